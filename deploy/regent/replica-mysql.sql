-- Start replication on db2 and db3 (MySQL 8.4+), once, after users-mysql.sql
-- ran on db1. Regent takes over from here: it records db1 as the primary
-- (the server the replicas follow; all three are read-only from my.cnf),
-- makes it writable, and repoints replicas itself from then on.
--
--   set -a; . /etc/regent/regent.env; set +a
--   envsubst '$REGENT_REPLICATION_PASSWORD' < replica-mysql.sql | mysql
--
-- SOURCE_HOST must be written exactly as db1's address in regent.yaml
-- (instances[].address, here 10.0.0.11): Regent recognises a replica's
-- source by it. The TLS options are the ones Regent itself uses
-- (mysql.replication_tls), so the first channel is as safe as the later ones.
STOP REPLICA;
CHANGE REPLICATION SOURCE TO
  SOURCE_HOST = '10.0.0.11',
  SOURCE_PORT = 3306,
  SOURCE_USER = 'repl',
  SOURCE_PASSWORD = '${REGENT_REPLICATION_PASSWORD}',
  SOURCE_AUTO_POSITION = 1,
  SOURCE_HEARTBEAT_PERIOD = 0.5,
  SOURCE_CONNECT_RETRY = 1,
  SOURCE_SSL = 1,
  SOURCE_SSL_CA = '/etc/mysql/tls/ca.crt',
  SOURCE_SSL_CERT = '/etc/mysql/tls/mysql.crt',
  SOURCE_SSL_KEY = '/etc/mysql/tls/mysql.key',
  SOURCE_SSL_VERIFY_SERVER_CERT = 1;
START REPLICA;
