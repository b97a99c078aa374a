// WHEP (draft-ietf-wish-whep) for one viewer session: the peer connection, the
// offer's URL, the answer with its trickled candidates (PATCH), the session's end
// (DELETE), and the gateway's JSON errors.

import { credentialExpiry, iceServersOf, noRelayReason, turnFailure } from "./turn.js";

const TRICKLE_BATCH_MS = 50; // candidates found this close together go in one PATCH

// A JSON error body {error, code}: the words for people, the code to act on.
export async function errorOf(response) {
  try {
    const body = await response.json();
    return { message: body.error || response.statusText, code: body.code || "" };
  } catch {
    return { message: response.statusText, code: "" };
  }
}

// A receive-only connection for one camera's video. ICE servers come with the answer.
export function newPeerConnection(policy) {
  const pc = new RTCPeerConnection({ iceServers: [], iceTransportPolicy: policy });
  pc.addTransceiver("video", { direction: "recvonly" });
  return pc;
}

export function whepUrl(baseUrl, camera, rendition) {
  const url = new URL(`whep/${encodeURIComponent(camera)}`, baseUrl);
  if (rendition) url.searchParams.set("rendition", rendition);
  return url;
}

// POST the offer. Deliberately not tied to the attempt: the gateway may have made
// the session already, and only the answer's Location lets the caller end it.
export function postOffer(url, sdp, token) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
    body: sdp,
  });
}

// End a session (WHEP DELETE). Not tied to an attempt: it is what ends one, and must
// go out even as the page closes.
export async function deleteSession(url, token) {
  try {
    await fetch(url, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${token}` },
      keepalive: true, // still sent when the page is closing
    });
  } catch {
    /* the gateway also notices a silent viewer within seconds */
  }
}

// Apply a 201 answer. The session's ICE servers (its Link headers: TURN with a
// username and credential of its own) are set before the offer is applied, so
// the browser gathers relay candidates from them at once; every candidate it
// finds is trickled to the session (WHEP PATCH, RFC 8840), a few at a time.
// `on.turnFailed(why)` hears of a TURN server that refused or could not be
// reached; `on.noRelay(why)` is told when only relays may be used and none came.
// Returns when the session's TURN credential expires (ms since 1970), if it has one.
export async function applyAnswer(pc, offer, response, sessionUrl, token, signal, on) {
  const sdp = await response.text();
  const servers = iceServersOf(response);
  // The policy the connection has (the attribute's, or one a page forced on it).
  const { iceTransportPolicy } = pc.getConfiguration();
  pc.setConfiguration({ iceServers: servers, iceTransportPolicy });
  const field = (name) => new RegExp(`^a=${name}:(.+)$`, "m").exec(offer.sdp)?.[1].trim();
  const head = [
    `a=ice-ufrag:${field("ice-ufrag")}`,
    `a=ice-pwd:${field("ice-pwd")}`,
    "m=video 9 UDP/TLS/RTP/SAVPF 0",
    `a=mid:${field("mid") ?? "0"}`,
  ];
  const etag = response.headers.get("ETag") || "*";
  let queued = [];
  let batch = null;
  let relays = 0;
  let turnError = null;
  const send = (end) => {
    clearTimeout(batch);
    batch = null;
    if (signal.aborted || (!queued.length && !end)) return;
    const lines = [...head, ...queued.map((c) => `a=${c}`), ...(end ? ["a=end-of-candidates"] : [])];
    queued = [];
    fetch(sessionUrl, {
      method: "PATCH",
      headers: {
        "Content-Type": "application/trickle-ice-sdpfrag",
        "If-Match": etag,
        Authorization: `Bearer ${token}`,
      },
      body: `${lines.join("\r\n")}\r\n`,
    }).catch(() => {}); // the gateway also learns our address from our checks
  };
  pc.addEventListener(
    "icecandidate",
    ({ candidate }) => {
      if (candidate?.candidate) {
        if (candidate.type === "relay") relays += 1;
        queued.push(candidate.candidate);
        batch ??= setTimeout(() => send(false), TRICKLE_BATCH_MS);
        return;
      }
      if (candidate) return; // an empty one ends a section; null ends gathering
      send(true);
      if (iceTransportPolicy !== "relay" || relays || signal.aborted) return;
      on.noRelay(noRelayReason(turnError, servers));
    },
    { signal },
  );
  pc.addEventListener(
    "icecandidateerror",
    (event) => {
      const why = turnFailure(event);
      if (!why) return;
      turnError = why;
      on.turnFailed?.(why);
    },
    { signal },
  );
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({ type: "answer", sdp });
  return credentialExpiry(servers);
}
