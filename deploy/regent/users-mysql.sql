-- Regent's accounts on Oracle MySQL 8.4+ (checked on 9.7). Run once, as
-- root, on the server that will be the first primary (db1): the statements
-- are written to the binary log and replicate like any other. The servers
-- start with super_read_only=ON (mysql.cnf), which stops root too, so turn it
-- off for the duration on db1 only. The passwords come from the environment,
-- as the agent's do (deploy/systemd/regent.env.example), through envsubst, so
-- they are never typed on a command line:
--
--   set -a; . /etc/regent/regent.env; set +a
--   envsubst '$REGENT_MYSQL_PASSWORD $REGENT_REPLICATION_PASSWORD' \
--     < users-mysql.sql | mysql
--
-- (Hex passwords need no SQL quoting. The replication password must be at
-- most 32 characters on MySQL: openssl rand -hex 16.)
--
-- '10.0.0.%' is the database network: the agents run on db1..db3 and every
-- agent probes every instance, and replicas connect from db1..db3. Use your
-- own network, or one account per host address.

SET GLOBAL super_read_only = OFF;

-- ---------------------------------------------------------------------------
-- regent: the agents' account (mysql.user in regent.yaml).
-- Every privilege below is needed by a statement Regent runs (topology/*.go);
-- nothing else is granted. SHOW GLOBAL VARIABLES/STATUS, @@gtid_executed and
-- WAIT_FOR_EXECUTED_GTID_SET need no privilege.
CREATE USER 'regent'@'10.0.0.%'
  IDENTIFIED BY '${REGENT_MYSQL_PASSWORD}'
  REQUIRE SSL;
GRANT
  -- SHOW FULL PROCESSLIST (sessions to kill when fencing; binlog dump threads
  -- of replicas) and information_schema.INNODB_TRX + PROCESSLIST (a
  -- switchover waits for running write transactions).
  PROCESS,
  -- SHOW REPLICA STATUS: every probe.
  REPLICATION CLIENT,
  -- SHOW REPLICAS (ListReplicas).
  REPLICATION SLAVE,
  -- RESET REPLICA ALL (promote) needs RELOAD besides REPLICATION_SLAVE_ADMIN.
  RELOAD,
  -- SHUTDOWN: the self-fence's last resort when read_only cannot be set
  -- before the lease deadline and the agent cannot kill mysqld (no
  -- CAP_KILL), used only while no commit waits for a semi-sync
  -- acknowledgement (docs/safety.md, "Stopping mysqld").
  SHUTDOWN
  ON *.* TO 'regent'@'10.0.0.%';
GRANT
  -- KILL CONNECTION of other users' sessions when fencing an old primary. It
  -- also lets Regent in when max_connections is reached.
  CONNECTION_ADMIN,
  -- Sessions of accounts with SYSTEM_USER (root, and any DBA or backup
  -- account granted ALL) can only be killed by an account that has it too;
  -- without it, fencing fails with "You are not owner of thread N" while
  -- such a session is open. It also makes 'regent' a system account, which
  -- only SYSTEM_USER accounts may alter or drop.
  SYSTEM_USER,
  -- SET GLOBAL read_only / super_read_only (fence; make the new primary
  -- writable), offline_mode (while a fence waits for read_only) and
  -- rpl_semi_sync_source_* / rpl_semi_sync_replica_enabled.
  SYSTEM_VARIABLES_ADMIN,
  -- STOP/START REPLICA, CHANGE REPLICATION SOURCE TO (repoint, demote,
  -- rejoin), RESET REPLICA ALL (promote).
  REPLICATION_SLAVE_ADMIN
  ON *.* TO 'regent'@'10.0.0.%';
-- Heartbeat counters of the replication channel (probe; without them Regent
-- cannot tell a frozen source from an idle one).
GRANT SELECT ON performance_schema.replication_connection_status TO 'regent'@'10.0.0.%';
GRANT SELECT ON performance_schema.replication_connection_configuration TO 'regent'@'10.0.0.%';

-- ---------------------------------------------------------------------------
-- repl: the replication account (mysql.replication_user). Regent writes it
-- into CHANGE REPLICATION SOURCE TO when it points a replica; replicas log in
-- with it.
CREATE USER 'repl'@'10.0.0.%'
  IDENTIFIED BY '${REGENT_REPLICATION_PASSWORD}'
  REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'10.0.0.%';

SET GLOBAL super_read_only = ON;
