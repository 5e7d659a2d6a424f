-- Start replication on db2 and db3 (MariaDB), once, after users-mariadb.sql
-- ran on db1. Regent takes over from here: it records db1 as the primary
-- (the server the replicas follow; all three are read-only from my.cnf),
-- makes it writable, and repoints replicas itself from then on.
--
--   set -a; . /etc/regent/regent.env; set +a
--   envsubst '$REGENT_REPLICATION_PASSWORD' < replica-mariadb.sql | mariadb
--
-- MASTER_HOST must be written exactly as db1's address in regent.yaml
-- (instances[].address, here 10.0.0.11): Regent recognises a replica's
-- source by it. The TLS options are the ones Regent itself uses
-- (mysql.replication_tls), so the first channel is as safe as the later ones.
STOP SLAVE;
CHANGE MASTER TO
  MASTER_HOST = '10.0.0.11',
  MASTER_PORT = 3306,
  MASTER_USER = 'repl',
  MASTER_PASSWORD = '${REGENT_REPLICATION_PASSWORD}',
  MASTER_USE_GTID = slave_pos,
  MASTER_HEARTBEAT_PERIOD = 0.5,
  MASTER_CONNECT_RETRY = 1,
  MASTER_SSL = 1,
  MASTER_SSL_CA = '/etc/mysql/tls/ca.crt',
  MASTER_SSL_CERT = '/etc/mysql/tls/mysql.crt',
  MASTER_SSL_KEY = '/etc/mysql/tls/mysql.key',
  MASTER_SSL_VERIFY_SERVER_CERT = 1;
START SLAVE;
