// Where a page's token comes from, and where it stays: this page's memory only
// (never a query string, localStorage or sessionStorage).
// - Opened directly: the URL fragment, #token=..., which is never sent to a server.
// - Embedded in the city dashboard: the host posts {type: "cctv-token", token} to
//   this frame after it announces {type: "cctv-ready"}; it may post again to refresh.

let token = new URLSearchParams(location.hash.slice(1)).get("token");
export const embedded = parent !== window;

const ready = new Promise((resolve) => {
  addEventListener("message", (event) => {
    if (event.source !== parent || event.data?.type !== "cctv-token" || !event.data.token) return;
    token = String(event.data.token);
    resolve();
  });
  if (token) resolve();
  else if (embedded) parent.postMessage({ type: "cctv-ready" }, "*"); // carries no secret
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
