#!/bin/sh
# frontend-db (MariaDB) runs this once, when its data volume is created (/docker-entrypoint-initdb.d).
# The image creates MARIADB_USER with every privilege on MARIADB_DATABASE only; hipbridge also
# creates and writes the operations schema, named after the front-end database ("<database>_…"),
# and the shared store HIPBRIDGE_SHARE_SCHEMA. Grant exactly those, nothing server-wide.
# A site that already has a data volume: run it by hand with the same env file, e.g.
#   docker-compose exec -T frontend-db sh < deploy/mariadb/10-hipbridge-grants.sh
set -eu
: "${MARIADB_USER:?set in deploy/hipbridge.env}" "${MARIADB_DATABASE:?set in deploy/hipbridge.env}"
: "${HIPBRIDGE_SHARE_SCHEMA:?set in deploy/hipbridge.env}"
MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-}" mariadb -uroot <<SQL
GRANT ALL PRIVILEGES ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';
GRANT ALL PRIVILEGES ON \`${MARIADB_DATABASE}\\_%\`.* TO '${MARIADB_USER}'@'%';
GRANT ALL PRIVILEGES ON \`${HIPBRIDGE_SHARE_SCHEMA}\`.* TO '${MARIADB_USER}'@'%';
FLUSH PRIVILEGES;
SQL
