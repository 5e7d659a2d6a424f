package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/regentdb/regent/api"
)

// writeJSON writes v with status. Encoding the api types cannot fail; if it
// somehow does, the caller gets a 500 rather than half a body.
// writeResult writes a Backend call's result: its error as the API error
// it maps to, or v with status.
func writeResult(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeAPIError(w, backendError(err))
		return
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "the agent could not encode its answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeAPIError(w, &api.Error{Status: status, Code: code, Message: msg})
}

func writeAPIError(w http.ResponseWriter, e *api.Error) {
	b, _ := json.Marshal(e) // strings only: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// backendError maps a Backend error to an answer.
func backendError(err error) *api.Error {
	msg := err.Error()
	switch {
	case errors.Is(err, ErrInvalid):
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: msg}
	case errors.Is(err, ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: msg}
	case errors.Is(err, ErrConflict):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: msg}
	case errors.Is(err, ErrRefused):
		return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeRefused, Message: msg}
	case errors.Is(err, ErrNotLeader):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeNotLeader, Message: msg}
	case errors.Is(err, ErrNoLeader):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeNoLeader, Message: msg}
	case errors.Is(err, ErrUnavailable):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: msg}
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: msg}
}

// validator is a request that can check itself.
type validator interface{ Validate() error }

// decodeBody decodes a JSON request body strictly: one object, no unknown
// fields, no trailing data, at most limit bytes, then Validate. An empty
// body is the zero request. Every failure is a 4xx with a message that
// says what to fix.
func decodeBody[T validator](w http.ResponseWriter, r *http.Request, limit int64) (T, *api.Error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return v, &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupportedMedia,
				Message: fmt.Sprintf("the body must be JSON (Content-Type: application/json), not %q", truncateName(ct))}
		}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	if errors.Is(err, io.EOF) {
		err = nil // an empty body is the zero request
	} else if err == nil {
		// Exactly one value: anything after it is a mistake.
		var extra json.RawMessage
		if err2 := dec.Decode(&extra); !errors.Is(err2, io.EOF) {
			if err2 == nil {
				err = errors.New("trailing data after the JSON object")
			} else {
				err = err2
			}
		}
	}
	if err != nil {
		return v, decodeError(err, limit, jsonFields(v))
	}
	if err := v.Validate(); err != nil {
		return v, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: err.Error()}
	}
	return v, nil
}

// jsonFields lists the JSON field names of a struct, for messages.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func decodeError(err error, limit int64, fields []string) *api.Error {
	bad := func(msg string) *api.Error {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: msg}
	}
	var tooBig *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
			Message: fmt.Sprintf("the body is larger than %d bytes", limit)}
	case errors.As(err, &syn):
		return bad(fmt.Sprintf("the body is not valid JSON (at byte %d): %v", syn.Offset, syn))
	case errors.As(err, &typ):
		if typ.Field != "" {
			return bad(fmt.Sprintf("field %q must be a %s, not a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value))
		}
		return bad(fmt.Sprintf("the body must be a JSON object, not a JSON %s", typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("the body ends in the middle of a JSON value")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		valid := "this call takes no field"
		if len(fields) > 0 {
			valid = "valid fields: " + strings.Join(fields, ", ")
		}
		return bad(fmt.Sprintf("unknown field %s in the body (%s)", strings.TrimPrefix(err.Error(), "json: unknown field "), valid))
	}
	return bad("bad value in the body: " + err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}
