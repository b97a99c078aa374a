// Where a page's token comes from, and where it stays: this page's memory only
// (never a query string, localStorage or sessionStorage).
// - Opened directly: the URL fragment, #token=..., which is never sent to a server.
//   It is read once and at once taken out of the address bar and of the history
//   entry, so it is not left for the next person at this screen or in a bookmark.
// - Embedded in the city dashboard: the page announces {type: "cctv-ready"} to its
//   parent, and the parent posts {type: "cctv-token", token} back; it may post again
//   to refresh. Both go only to and from the dashboards in the gateway's
//   [cors] origins (/config.json `embed_origins`), which are also the only sites the
//   page's Content-Security-Policy lets frame it.

function takeFragmentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const found = fragment.get("token");
  if (fragment.has("token")) {
    fragment.delete("token");
    const rest = fragment.toString();
    const url = location.pathname + location.search + (rest ? `#${rest}` : "");
    history.replaceState(history.state, "", url);
  }
  return found;
}

let token = takeFragmentToken();
export const embedded = parent !== window;

// The origins that may hand this page a token. Nothing is trusted until they are known.
const embedOrigins = embedded
  ? fetch("/config.json")
      .then((response) => response.json())
      .then((config) => (Array.isArray(config.embed_origins) ? config.embed_origins : []))
      .catch(() => [])
  : Promise.resolve([]);

// Where to announce readiness: the parent's origin when the browser tells it
// (location.ancestorOrigins), else each allowed origin; postMessage delivers a
// message only when its target origin is the parent's.
function announceTo(origins) {
  const parentOrigin = location.ancestorOrigins?.[0];
  if (parentOrigin === undefined) return origins;
  return origins.includes(parentOrigin) ? [parentOrigin] : [];
}

const ready = new Promise((resolve) => {
  addEventListener("message", async (event) => {
    const { source, origin, data } = event;
    if (source !== parent || data?.type !== "cctv-token" || !data.token) return;
    if (!(await embedOrigins).includes(origin)) return;
    token = String(data.token);
    resolve();
  });
  if (token) resolve();
  else if (embedded) {
    embedOrigins.then((origins) => {
      for (const origin of announceTo(origins)) parent.postMessage({ type: "cctv-ready" }, origin);
    });
  }
});

export const hasToken = () => Boolean(token);

// The current token, waiting for the host dashboard's message when embedded.
export async function getToken() {
  await ready;
  return token;
}

export async function authorized(headers = {}) {
  return { ...headers, Authorization: `Bearer ${await getToken()}` };
}
