#!/bin/sh
# Fail fast instead of starting a controller whose admin password is empty: JCasC resolves an unset
# ${JENKINS_ADMIN_PASSWORD} to '' (configuration-as-code SecretSourceResolver).
set -eu
if [ -z "${JENKINS_ADMIN_PASSWORD:-}" ]; then
    echo "mlci-jenkins: set JENKINS_ADMIN_PASSWORD (the admin user's password); refusing to start" >&2
    exit 1
fi
exec /usr/local/bin/jenkins.sh "$@"
