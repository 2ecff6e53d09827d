#!/usr/bin/env bash
# Tests scripts/deploy-site.sh against moto's S3 and CloudFront (the test command's moto, at
# CAFE_TEST_DYNAMODB_ENDPOINT): a bucket holding a stale file and a distribution, the upload,
# then what a browser would be served: every file of site/ with its content type, js/config.js
# naming the API, the stale file gone, an invalidation of /*.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${CAFE_TEST_DYNAMODB_ENDPOINT:?the moto server (scripts/services.sh start_services)}"
export AWS_ENDPOINT_URL="$CAFE_TEST_DYNAMODB_ENDPOINT"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
fail() { echo "deploy-site test: $*" >&2; exit 1; }

bucket="cafe-site-test-$RANDOM$RANDOM"
aws s3api create-bucket --bucket "$bucket" >/dev/null
echo stale | aws s3 cp - "s3://$bucket/old.html" >/dev/null
distribution=$(aws cloudfront create-distribution --origin-domain-name "$bucket.s3.amazonaws.com" \
  --default-root-object index.html --query Distribution.Id --output text)
api="https://abc123defg.execute-api.us-east-1.amazonaws.com/"

SITE_BUCKET="$bucket" SITE_DISTRIBUTION_ID="$distribution" API_URL="$api" "$ROOT/scripts/deploy-site.sh"

expected=$(cd "$ROOT/site" && find . -type f | sed 's|^\./||' | sort)
uploaded=$(aws s3api list-objects-v2 --bucket "$bucket" --query 'Contents[].Key' --output text | tr '\t' '\n' | sort)
[ "$expected" = "$uploaded" ] || fail "the bucket holds
$uploaded
not site/'s
$expected"
for pair in index.html=text/html board.html=text/html display.html=text/html \
    js/api.js=javascript css/site.css=text/css; do
  type=$(aws s3api head-object --bucket "$bucket" --key "${pair%%=*}" --query ContentType --output text)
  case "$type" in *"${pair#*=}"*) ;; *) fail "${pair%%=*} has content type $type" ;; esac
done
aws s3 cp "s3://$bucket/js/config.js" - | grep -qF "apiBase: 'https://abc123defg.execute-api.us-east-1.amazonaws.com'," \
  || fail "js/config.js does not name the API"
cmp -s <(aws s3 cp "s3://$bucket/index.html" -) "$ROOT/site/index.html" || fail "index.html differs"
git -C "$ROOT" diff --quiet -- site/js/config.js || fail "the committed site/js/config.js was changed"
paths=$(aws cloudfront list-invalidations --distribution-id "$distribution" --query 'InvalidationList.Items[].Id' --output text)
[ -n "$paths" ] && [ "$paths" != None ] || fail "no invalidation"
# A stack without the outputs (here: no stack at all) fails in words, uploading nothing.
if STACK_NAME=no-such-stack "$ROOT/scripts/deploy-site.sh" 2>/dev/null; then fail "ran without a bucket"; fi
echo "deploy-site: $(echo "$uploaded" | wc -l) files in s3://$bucket with their types, config.js names the API, old.html deleted, invalidation $paths"
