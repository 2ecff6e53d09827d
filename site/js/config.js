// Where the screens find the API and the live channel. '' = the same origin as the page (the
// local server and CloudFront both serve the API beside the site: docs/site.md).
export const config = {
  apiBase: '',
  // The live channel's WebSocket URL; '' = same origin, path /live (ws: or wss: as the page).
  liveUrl: '',
  // How often the screens re-read their state when the live channel is unavailable: under
  // 2 s with the request, so a change shows within 2 s.
  pollMs: 1500,
  // The live protocol's heartbeat (docs/site.md): under API Gateway's 10-minute idle limit.
  pingMs: 5 * 60 * 1000,
};

export function liveUrl() {
  if (config.liveUrl) return config.liveUrl;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/live`;
}
