#!/usr/bin/env bash
# Uploads the web screens (site/) to the stack's private bucket and invalidates the CloudFront
# cache (docs/site.md). Run it after `sam deploy`, and after every change under site/.
#
#   scripts/deploy-site.sh                 reads the stack's outputs (STACK_NAME, default cafe):
#                                          SiteBucketName, SiteDistributionId, ApiUrl
#   SITE_BUCKET=b SITE_DISTRIBUTION_ID=E123 API_URL=https://x.execute-api.../ scripts/deploy-site.sh
#
# Uses the aws CLI (awscli, pinned in scripts/requirements.txt) with the usual credentials and
# region; AWS_ENDPOINT_URL points it at an emulator (scripts/deploy-site-test.sh uses moto's).
# The uploaded js/config.js names the API's URL (the committed one says '': the same origin,
# which is how cafe-local serves the site); everything else is uploaded as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

output() {
  aws cloudformation describe-stacks --stack-name "${STACK_NAME:-cafe}" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
bucket="${SITE_BUCKET:-$(output SiteBucketName)}"
distribution="${SITE_DISTRIBUTION_ID:-$(output SiteDistributionId)}"
api_url="${API_URL:-$(output ApiUrl)}"
api_url="${api_url%/}"
for pair in "SITE_BUCKET=$bucket" "SITE_DISTRIBUTION_ID=$distribution" "API_URL=$api_url"; do
  case "${pair#*=}" in ''|None) echo "deploy-site: ${pair%%=*} unknown (not given, not in the stack's outputs)" >&2; exit 1 ;; esac
done
case "$api_url" in https://*) ;; *) echo "deploy-site: API_URL must be https://, not $api_url" >&2; exit 1 ;; esac

stage="$(mktemp -d "${TMPDIR:-/tmp}/cafe-site.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp -R "$ROOT/site/." "$stage/"
sed -i "s|^  apiBase: '',|  apiBase: '$api_url',|" "$stage/js/config.js"
if ! grep -qF "apiBase: '$api_url'," "$stage/js/config.js"; then
  echo "deploy-site: could not set apiBase in site/js/config.js" >&2
  exit 1
fi

# The live channel's WebSocket URL, once the stack has one (output LiveUrl, or LIVE_URL): the
# anonymous pickup display connects to it; signed-in screens get it with their ticket. Without
# it the display polls GET /shop/board.
live_url="${LIVE_URL:-$(output LiveUrl 2>/dev/null || true)}"
case "$live_url" in
  wss://*) sed -i "s|^  liveUrl: '',|  liveUrl: '$live_url',|" "$stage/js/config.js" ;;
  ''|None) ;;
  *) echo "deploy-site: LIVE_URL must be wss://, not $live_url" >&2; exit 1 ;;
esac

# no-cache: browsers revalidate each file, so a new upload shows at the next load (CloudFront
# itself is told by the invalidation below).
aws s3 sync "$stage/" "s3://$bucket/" --delete --cache-control no-cache --only-show-errors
echo "site/ uploaded to s3://$bucket ($(find "$stage" -type f | wc -l) files; API $api_url)"
invalidation=$(aws cloudfront create-invalidation --distribution-id "$distribution" \
  --paths '/*' --query Invalidation.Id --output text)
echo "CloudFront $distribution: invalidation $invalidation of /*"
