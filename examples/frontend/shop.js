// The example shop's frontend: OpenReplay's tracker records the session and puts its token on the
// shop's own API calls, so the backend's errors land on this session's replay.
import { tracker } from "@openreplay/tracker";
import config from "./config.js";

const api = new URL(config.apiUrl).origin;

tracker.configure({
  projectKey: config.projectKey,
  ingestPoint: config.ingestPoint,
  __DISABLE_SECURE_MODE: location.protocol === "http:", // only for a page served over plain http (local runs)
  network: {
    // X-OpenReplay-SessionToken: <token> on fetch and XMLHttpRequest, once the session has started
    sessionTokenHeader: true,
    // ...and only to the shop's own API: never to third parties (fetch passes the absolute URL,
    // XMLHttpRequest the URL given to open(), so resolve it against the page)
    tokenUrlMatcher: (url) => new URL(url, location.href).origin === api,
  },
});

// Resolves to {success, sessionID, sessionToken, userUUID}, or {success: false, reason}.
export const session = tracker.start();

// The shop's API, called with fetch...
export async function pay() {
  const response = await fetch(`${config.apiUrl}/checkout`);
  return response.status;
}

// ...and with XMLHttpRequest, as older code does.
export function payLegacy() {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("GET", `${config.apiUrl}/checkout`);
    request.onloadend = () => resolve(request.status); // 0 when the browser blocked it (CORS)
    request.send();
  });
}

const result = document.querySelector("#result");
const show = (status) => {
  result.textContent = status === 402 ? "Payment declined" : `Status ${status}`;
};
document.querySelector("#pay")?.addEventListener("click", () => pay().then(show, (e) => show(e.message)));
document.querySelector("#pay-legacy")?.addEventListener("click", () => payLegacy().then(show));
