-- Regent's accounts on MariaDB 10.6+ (checked on 10.11). Run once, as root,
-- on the server that will be the first primary (db1), before or after the
-- replicas are cloned from it: the statements are written to the binary log
-- and replicate like any other. The passwords come from the environment, as
-- the agent's do (deploy/systemd/regent.env.example), through envsubst, so
-- they are never typed on a command line:
--
--   set -a; . /etc/regent/regent.env; set +a
--   envsubst '$REGENT_MYSQL_PASSWORD $REGENT_REPLICATION_PASSWORD' \
--     < users-mariadb.sql | mariadb
--
-- (Hex passwords need no SQL quoting. The replication password must be at
-- most 32 characters on MySQL: openssl rand -hex 16.)
--
-- '10.0.0.%' is the database network: the agents run on db1..db3 and every
-- agent probes every instance, and replicas connect from db1..db3. Use your
-- own network, or one account per host address.

-- ---------------------------------------------------------------------------
-- regent: the agents' account (mysql.user in regent.yaml).
-- Every privilege below is needed by a statement Regent runs (topology/*.go);
-- nothing else is granted. Variables, status, @@gtid_binlog_state and
-- MASTER_GTID_WAIT need no privilege.
CREATE USER 'regent'@'10.0.0.%'
  IDENTIFIED BY '${REGENT_MYSQL_PASSWORD}'
  REQUIRE SSL;
GRANT
  -- SHOW FULL PROCESSLIST (sessions to kill when fencing; binlog dump threads
  -- of replicas) and information_schema.INNODB_TRX + PROCESSLIST (a
  -- switchover waits for running write transactions).
  PROCESS,
  -- KILL CONNECTION of other users' sessions when fencing an old primary. It
  -- also lets Regent in when max_connections is reached (one extra
  -- connection is kept for it).
  CONNECTION ADMIN,
  -- SHOW ALL SLAVES STATUS: every probe.
  SLAVE MONITOR,
  -- SET GLOBAL read_only=ON/OFF (fence; make the new primary writable):
  -- 10.11 refuses it without READ ONLY ADMIN, which SUPER no longer
  -- includes. It also lets this account write on a read-only server; Regent
  -- never writes data, and fencing spares only Regent's own sessions.
  READ ONLY ADMIN,
  -- STOP/START SLAVE, CHANGE MASTER TO (repoint, demote, rejoin), RESET
  -- SLAVE ALL (promote), and SET GLOBAL rpl_semi_sync_slave_enabled.
  REPLICATION SLAVE ADMIN,
  -- RESET SLAVE ALL also needs RELOAD (it deletes the relay logs).
  RELOAD,
  -- SHOW SLAVE HOSTS (ListReplicas) and SET GLOBAL
  -- rpl_semi_sync_master_enabled / _wait_point / _timeout / _wait_no_slave.
  REPLICATION MASTER ADMIN,
  -- SHUTDOWN: the self-fence's last resort when read_only cannot be set
  -- before the lease deadline and the agent cannot kill mysqld (no
  -- CAP_KILL), used only while no commit waits for a semi-sync
  -- acknowledgement (docs/safety.md, "Stopping mysqld").
  SHUTDOWN
  ON *.* TO 'regent'@'10.0.0.%';

-- ---------------------------------------------------------------------------
-- repl: the replication account (mysql.replication_user). Regent writes it
-- into CHANGE MASTER TO when it points a replica; replicas log in with it.
CREATE USER 'repl'@'10.0.0.%'
  IDENTIFIED BY '${REGENT_REPLICATION_PASSWORD}'
  REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'10.0.0.%';
