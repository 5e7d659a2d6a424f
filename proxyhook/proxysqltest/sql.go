package proxysqltest

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds the emulation's small SQL: a tokenizer and a parser for the
// statements an admin client sends to ProxySQL's admin interface. It is not
// SQLite (which ProxySQL embeds); statements outside this subset get an error
// that says so, rather than a wrong answer.

type tokKind int

const (
	tokIdent tokKind = iota + 1
	tokNumber
	tokString
	tokPunct
	tokEOF
)

type token struct {
	kind tokKind
	text string // identifier (as written), number, unescaped string, or punctuation
}

func (t token) is(kw string) bool { return t.kind == tokIdent && strings.EqualFold(t.text, kw) }

func tokenize(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			q := c
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				ch := s[i]
				// SQLite, which ProxySQL's admin runs on, has no backslash
				// escapes: a backslash is itself, and a quote is doubled.
				if ch == q {
					if i+1 < len(s) && s[i+1] == q {
						b.WriteByte(q)
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated string")
			}
			out = append(out, token{kind: tokString, text: b.String()})
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quoted identifier")
			}
			out = append(out, token{kind: tokIdent, text: s[i+1 : i+1+j]})
			i += j + 2
		case c >= '0' && c <= '9' || (c == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && lastIsOperator(out)):
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			out = append(out, token{kind: tokNumber, text: s[i:j]})
			i = j
		case isIdentByte(c):
			j := i
			for j < len(s) && (isIdentByte(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tokIdent, text: s[i:j]})
			i = j
		default:
			if i+1 < len(s) {
				two := s[i : i+2]
				if two == "<>" || two == "!=" || two == "<=" || two == ">=" {
					out = append(out, token{kind: tokPunct, text: two})
					i += 2
					continue
				}
			}
			if strings.IndexByte("(),=*;<>", c) < 0 {
				return nil, fmt.Errorf("unexpected character %q", c)
			}
			out = append(out, token{kind: tokPunct, text: string(c)})
			i++
		}
	}
	return append(out, token{kind: tokEOF}), nil
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '@'
}

func lastIsOperator(out []token) bool {
	if len(out) == 0 {
		return true
	}
	l := out[len(out)-1]
	return l.kind == tokPunct && l.text != ")" || l.kind == tokIdent && (l.is("IN") || l.is("AND") || l.is("OR") || l.is("VALUES") || l.is("LIMIT"))
}

// value is a cell: NULL or text. Integer columns hold canonical decimal text.
type value struct {
	null bool
	s    string
}

func (v value) String() string {
	if v.null {
		return "NULL"
	}
	return v.s
}

// literal is a parsed constant.
type literal struct {
	null   bool
	number bool
	text   string
}

// expr is a WHERE condition.
type expr interface {
	eval(row func(col string) (value, bool, error)) (bool, error)
}

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ e expr }
type cmpExpr struct {
	col string
	op  string
	lit literal
}
type inExpr struct {
	col  string
	not  bool
	lits []literal
}

func (e andExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	l, err := e.l.eval(row)
	if err != nil || !l {
		return false, err
	}
	return e.r.eval(row)
}

func (e orExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	l, err := e.l.eval(row)
	if err != nil || l {
		return l, err
	}
	return e.r.eval(row)
}

func (e notExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	v, err := e.e.eval(row)
	return !v, err
}

func (e cmpExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	v, isInt, err := row(e.col)
	if err != nil {
		return false, err
	}
	if v.null || e.lit.null {
		return false, nil
	}
	c, err := compare(v, isInt, e.lit)
	if err != nil {
		return false, fmt.Errorf("column %s: %w", e.col, err)
	}
	switch e.op {
	case "=":
		return c == 0, nil
	case "<>", "!=":
		return c != 0, nil
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case ">=":
		return c >= 0, nil
	}
	return false, fmt.Errorf("operator %q", e.op)
}

func (e inExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	v, isInt, err := row(e.col)
	if err != nil || v.null {
		return false, err
	}
	for _, l := range e.lits {
		if l.null {
			continue
		}
		c, err := compare(v, isInt, l)
		if err != nil {
			return false, fmt.Errorf("column %s: %w", e.col, err)
		}
		if c == 0 {
			return !e.not, nil
		}
	}
	return e.not, nil
}

func compare(v value, isInt bool, l literal) (int, error) {
	if isInt {
		a, err := strconv.ParseInt(v.s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stored value %q is not an integer", v.s)
		}
		b, err := strconv.ParseInt(strings.TrimSpace(l.text), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", l.text)
		}
		switch {
		case a < b:
			return -1, nil
		case a > b:
			return 1, nil
		}
		return 0, nil
	}
	return strings.Compare(v.s, l.text), nil
}

// parser is a recursive-descent parser over tokens.
type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) accept(kw string) bool {
	if p.peek().is(kw) || p.peek().kind == tokPunct && p.peek().text == kw {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(kw string) error {
	if !p.accept(kw) {
		return fmt.Errorf("expected %s near %q", kw, p.peek().text)
	}
	return nil
}

func (p *parser) ident() (string, error) {
	t := p.next()
	if t.kind != tokIdent {
		return "", fmt.Errorf("expected a name near %q", t.text)
	}
	return strings.ToLower(t.text), nil
}

func (p *parser) literal() (literal, error) {
	t := p.next()
	switch {
	case t.kind == tokNumber:
		return literal{number: true, text: t.text}, nil
	case t.kind == tokString:
		return literal{text: t.text}, nil
	case t.is("NULL"):
		return literal{null: true}, nil
	}
	return literal{}, fmt.Errorf("expected a value near %q", t.text)
}

func (p *parser) end() error {
	p.accept(";")
	if p.peek().kind != tokEOF {
		return fmt.Errorf("unexpected %q at the end of the statement", p.peek().text)
	}
	return nil
}

func (p *parser) expr() (expr, error) {
	l, err := p.andExpr()
	if err != nil {
		return nil, err
	}
	for p.accept("OR") {
		r, err := p.andExpr()
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) andExpr() (expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.accept("AND") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) unary() (expr, error) {
	if p.accept("NOT") {
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	if p.accept("(") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	}
	col, err := p.ident()
	if err != nil {
		return nil, err
	}
	not := p.accept("NOT")
	if p.accept("IN") {
		if err := p.expect("("); err != nil {
			return nil, err
		}
		var lits []literal
		for {
			l, err := p.literal()
			if err != nil {
				return nil, err
			}
			lits = append(lits, l)
			if !p.accept(",") {
				break
			}
		}
		return inExpr{col: col, not: not, lits: lits}, p.expect(")")
	}
	if not {
		return nil, fmt.Errorf("expected IN after NOT near %q", p.peek().text)
	}
	if p.accept("IS") {
		neg := p.accept("NOT")
		if err := p.expect("NULL"); err != nil {
			return nil, err
		}
		e := expr(isNullExpr{col: col})
		if neg {
			e = notExpr{e}
		}
		return e, nil
	}
	op := p.next()
	switch {
	case op.kind != tokPunct:
		return nil, fmt.Errorf("expected a comparison after %s near %q", col, op.text)
	case op.text == "=", op.text == "<>", op.text == "!=", op.text == "<", op.text == "<=", op.text == ">", op.text == ">=":
	default:
		return nil, fmt.Errorf("expected a comparison after %s near %q", col, op.text)
	}
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	return cmpExpr{col: col, op: op.text, lit: lit}, nil
}

type isNullExpr struct{ col string }

func (e isNullExpr) eval(row func(string) (value, bool, error)) (bool, error) {
	v, _, err := row(e.col)
	return v.null, err
}
