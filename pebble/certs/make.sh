#!/usr/bin/env bash
# Makes the test CA of this project and the TLS certificate of Pebble's own HTTPS listener
# (SAN localhost, 127.0.0.1, ::1), both ECDSA P-256, valid for 10 years. Run from anywhere:
#   pebble/certs/make.sh
# These keys are public test material: never trust ca.pem outside tests.
set -euo pipefail
cd "$(dirname "$0")"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key.pem
openssl req -x509 -new -key ca.key.pem -sha256 -days 3650 \
  -subj "/CN=acme-client test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out localhost.key.ec.pem
# Pebble reads PKCS#8 or SEC1; PKCS#8 is the common form.
openssl pkcs8 -topk8 -nocrypt -in localhost.key.ec.pem -out localhost.key.pem
rm localhost.key.ec.pem
openssl req -new -key localhost.key.pem -subj "/CN=localhost" -out localhost.csr
openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key.pem -CAcreateserial \
  -days 3650 -sha256 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n') \
  -out localhost.pem
rm -f localhost.csr ca.srl
openssl verify -CAfile ca.pem localhost.pem
