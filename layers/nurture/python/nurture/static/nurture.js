/*! nurture.js 1.0.0, the nurture engine's tracking snippet: see docs/snippet.md */
(() => {
  "use strict";
  const w = window, d = document, nav = navigator, loc = location, hist = history;
  const PREFIX = "nurture.", COOKIE = "nurture_aid", YEAR = 31536000;
  const MAX_QUEUE = 100, MAX_BATCH = 20, BATCH_DELAY = 500, MAX_BACKOFF = 60000;
  const script = d.currentScript || d.querySelector("script[data-write-key]");
  const attr = (name) => (script && script.getAttribute("data-" + name)) || "";
  let api = attr("api");
  try {
    api = (api || new URL(script.src).origin).replace(/\/+$/, "");
  } catch (e) {
    api = "";
  }
  const writeKey = attr("write-key");
  const cookieDomain = attr("cookie-domain");
  const gpc = nav.globalPrivacyControl === true;
  const consentRequired = attr("consent") === "required";
  const storage = {
    get: (k) => { try { return localStorage.getItem(PREFIX + k); } catch (e) { return null; } },
    set: (k, v) => { try { localStorage.setItem(PREFIX + k, v); } catch (e) {} },
    del: (k) => { try { localStorage.removeItem(PREFIX + k); } catch (e) {} },
  };
  const given = storage.get("consent");
  let consented = consentRequired ? given === "1" : given !== "0";
  let started = false, anonymousId = null, userId = null, timer = 0, attempt = 0, sending = false;
  const allowed = () => consented && !gpc && !!api && !!writeKey;

  const uuid = () => crypto.randomUUID ? crypto.randomUUID()
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
      (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));
  const cookie = (value, maxAge) => {
    d.cookie = COOKIE + "=" + encodeURIComponent(value) + "; path=/; max-age=" + maxAge + "; SameSite=Lax" +
      (cookieDomain ? "; domain=" + cookieDomain : "") + (loc.protocol === "https:" ? "; Secure" : "");
  };
  // Cookie and localStorage: either copy keeps the visitor.
  const visitor = () => {
    if (!anonymousId) {
      const m = d.cookie.match(/(?:^|;\s*)nurture_aid=([^;]+)/);
      anonymousId = (m && decodeURIComponent(m[1])) || storage.get("aid") || uuid();
      userId = storage.get("uid");
      cookie(anonymousId, YEAR);
      storage.set("aid", anonymousId);
    }
    return anonymousId;
  };

  // Kept until the API answers; the next page resends what is left (messageId dedupes).
  const queue = () => { try { return JSON.parse(storage.get("queue") || "[]"); } catch (e) { return []; } };
  const keep = (q) => (q.length ? storage.set("queue", JSON.stringify(q.slice(-MAX_QUEUE))) : storage.del("queue"));
  const later = (ms) => { if (!timer) timer = setTimeout(() => { timer = 0; flush(false); }, ms); };
  const body = (batch) => JSON.stringify({ batch: batch, writeKey: writeKey, sentAt: new Date().toISOString() });
  const flush = async (leaving) => {
    const batch = queue().slice(0, MAX_BATCH);
    if (!allowed() || !batch.length) return;
    const url = api + "/v1/batch";
    // text/plain: no CORS preflight; the API reads it as JSON.
    if (leaving && nav.sendBeacon && nav.sendBeacon(url, new Blob([body(batch)], { type: "text/plain" }))) return;
    if (sending && !leaving) return;
    sending = true;
    let done = false;
    try {
      const r = await fetch(url, { method: "POST", body: body(batch), keepalive: true, credentials: "omit",
        headers: { "content-type": "text/plain" } });
      done = r.status < 500 && r.status !== 429; // other 4xx never succeed
    } catch (e) {}
    sending = false;
    if (done) {
      const sent = batch.map((m) => m.messageId);
      keep(queue().filter((m) => sent.indexOf(m.messageId) < 0));
      attempt = 0;
      if (queue().length) later(0);
    } else if (!leaving) {
      attempt += 1;
      later(Math.min(MAX_BACKOFF, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  };

  const pageInfo = () => ({ path: loc.pathname, url: loc.href, search: loc.search, title: d.title,
    referrer: d.referrer });
  const send = (type, fields, context) => {
    if (!allowed()) return; // no consent, or GPC: nothing sent or stored
    const message = Object.assign({ type: type, messageId: uuid(), anonymousId: visitor(),
      timestamp: new Date().toISOString(), context: Object.assign({ library: { name: "nurture.js", version: "1.0.0" },
        page: pageInfo(), userAgent: nav.userAgent, locale: nav.language }, context) }, fields);
    if (userId && !message.userId) message.userId = userId;
    const q = queue();
    q.push(message);
    keep(q);
    later(BATCH_DELAY);
  };

  // An email link's click token leaves the address bar before anything is sent.
  let clickToken = null;
  const found = loc.search.match(/[?&]nt=([^&]*)/);
  if (found) {
    clickToken = found[1]; // base64url: nothing to decode
    const search = loc.search.replace(/([?&])nt=[^&]*&?/, "$1").replace(/[?&]$/, "");
    hist.replaceState(hist.state, "", loc.pathname + search + loc.hash);
  }

  const nurture = {
    page: (name, properties) => send("page", { name: typeof name === "string" ? name : undefined,
      properties: Object.assign(pageInfo(), typeof name === "object" ? name : properties) }),
    track: (event, properties) => send("track", { event: event, properties: properties || {} }),
    identify: (id, traits) => {
      if (typeof id === "object" && id !== null) { traits = id; id = null; }
      if (id && allowed()) { visitor(); userId = String(id); storage.set("uid", userId); }
      send("identify", { traits: traits || {} });
    },
    consent: (granted) => {
      consented = !!granted;
      if (!gpc && (granted || !consentRequired)) storage.set("consent", granted ? "1" : "0");
      if (granted) return start();
      storage.del("queue");
      if (consentRequired) storage.del("consent"); // refusal is the default: nothing kept
      nurture.reset();
      started = false;
    },
    reset: () => { ["aid", "uid"].forEach(storage.del); cookie("", 0); anonymousId = userId = null; },
    anonymousId: () => (allowed() ? visitor() : null),
  };
  const start = () => {
    if (started || !allowed()) return;
    started = true;
    if (clickToken) send("identify", { traits: {} }, { nurture: { click_token: clickToken } });
    clickToken = null;
    nurture.page();
    later(BATCH_DELAY);
  };

  // A page view per history navigation (not per #hash change).
  let last = loc.pathname + loc.search;
  const navigated = () => {
    const now = loc.pathname + loc.search;
    if (now !== last) { last = now; if (started) nurture.page(); }
  };
  ["pushState", "replaceState"].forEach((name) => {
    const original = hist[name];
    hist[name] = function () { const r = original.apply(this, arguments); navigated(); return r; };
  });
  w.addEventListener("popstate", navigated);
  w.addEventListener("pagehide", () => flush(true));
  d.addEventListener("visibilitychange", () => { if (d.visibilityState === "hidden") flush(true); });

  // Calls queued before loading: window.nurture = [[method, ...args]].
  const waiting = Array.isArray(w.nurture) ? w.nurture : [];
  w.nurture = nurture;
  if (!writeKey) console.warn("nurture.js: no data-write-key");
  start();
  waiting.forEach((call) => { if (nurture[call[0]]) nurture[call[0]].apply(null, call.slice(1)); });
})();
