// TURN: the session's relay servers (from the WHEP answer's Link headers), why a
// relay failed, when its credential runs out, and whether the connection is relayed.

// The session's ICE servers from the answer's Link headers (WHEP):
//   <turn:host:3478?transport=udp>; rel="ice-server"; username="…"; credential="…";
//   credential-type="password"
// Several may come in one header, comma-separated (fetch joins repeated headers).
export function iceServersOf(response) {
  const servers = [];
  for (const entry of (response.headers.get("Link") || "").split(/,\s*(?=<)/)) {
    const url = /^\s*<([^>]+)>/.exec(entry);
    const params = {};
    for (const [, name, quoted, bare] of entry.matchAll(/;\s*([\w-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]+))/g)) {
      params[name.toLowerCase()] = quoted ?? bare;
    }
    if (!url || params.rel !== "ice-server") continue;
    const server = { urls: url[1] };
    if (params.username !== undefined) {
      server.username = params.username;
      server.credential = params.credential;
    }
    servers.push(server);
  }
  return servers;
}

// An icecandidateerror from a TURN server: why, as {reason, code}; null for others.
export function turnFailure(event) {
  if (!/^turns?:/.test(event.url || "")) return null;
  const refused = [401, 403, 437, 438, 441].includes(event.errorCode);
  return refused
    ? {
        reason: `TURN server refused the credentials (${event.errorCode} ${event.errorText})`,
        code: "turn_refused",
      }
    : { reason: `TURN server unreachable (${event.errorCode})`, code: "turn_unreachable" };
}

// Only relays were allowed and none came: the TURN server's failure if one was
// heard, else whether the gateway offered any relay at all.
export function noRelayReason(turnError, servers) {
  if (turnError) return turnError;
  return servers.length
    ? { reason: "no relay candidate from the TURN server", code: "turn_unreachable" }
    : { reason: "the gateway offers no TURN server", code: "relay_unavailable" };
}

// When the first of the servers' credentials expires (ms since 1970), or undefined:
// coturn's REST usernames begin with their expiry, "<unix time>:<name>".
export function credentialExpiry(servers) {
  const expiries = servers
    .map((server) => 1000 * Number(/^(\d+):/.exec(server.username)?.[1]))
    .filter(Number.isFinite);
  return expiries.length ? Math.min(...expiries) : undefined;
}

// Whether the connection's selected candidate pair goes through a TURN relay.
export async function relayed(pc) {
  const stats = await pc?.getStats().catch(() => null);
  let through = false;
  stats?.forEach((s) => {
    const pair = s.type === "transport" && stats.get(s.selectedCandidatePairId);
    if (pair) through = stats.get(pair.localCandidateId)?.candidateType === "relay";
  });
  return through;
}

// When to fetch fresh credentials for a relayed session whose credential expires
// at `expiresAt`: a little before (coturn then refuses to refresh the allocation,
// and the relay ends within its lifetime, 10 minutes by default). Null: not worth it.
export function refreshDelay(expiresAt) {
  const remaining = expiresAt - Date.now();
  if (!(remaining > 10000)) return null;
  return remaining - Math.min(60000, remaining / 4);
}
