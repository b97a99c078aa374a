// WHEP player logic (draft-ietf-wish-whep), shared by every page that shows a tile.
// No build step: import it as an ES module.

const GATHER_CAP_MS = 500; // host candidates arrive in a few ms; never wait for slow STUN

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_CAP_MS);
  });
}

export class WhepError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Plays `url` (POST /whep/{camera}) into `video`. Returns an object with
// `pc`, `sessionUrl` and `stop()`, which ends the session on the gateway too.
export async function playWhep(url, video, { token, onState } = {}) {
  url = new URL(url, document.baseURI).href;
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => onState?.(pc.connectionState));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    pc.close();
    let message = response.statusText;
    try {
      message = (await response.json()).error || message;
    } catch {
      /* not JSON */
    }
    throw new WhepError(response.status, message, Number(response.headers.get("Retry-After")));
  }
  const sessionUrl = new URL(response.headers.get("Location"), url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return {
    pc,
    sessionUrl,
    async stop() {
      pc.close();
      video.srcObject = null;
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      await fetch(sessionUrl, { method: "DELETE", headers }).catch(() => {});
    },
  };
}
