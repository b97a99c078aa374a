// Link adaptation: when to switch a tile to the lighter picture (a [[relay.renditions]]
// of the gateway) by itself, and when to try the camera's own again.
//
// Only the network's own evidence counts (issue 26): a busy machine decodes late,
// freezes and drops frames on a perfect LAN, and a switch there would only end and
// start sessions (audited) for nothing. Lost packets are that evidence: a second is
// bad when more than `loss` of its packets were lost. A longer round trip (more than
// `rttRiseMs` above the session's lowest) and a bandwidth estimate below what the
// camera's picture needs count only with packets lost in the last `window` seconds
// (a queue that fills and overflows): alone, both are as often a busy browser or
// gateway (measured on loopback under load: round trips 250+ ms longer, and the
// browser's delay-based estimate below the picture's bitrate within 6 s). A round
// trip over `rttAloneMs` longer is a queue of its own. A second without a new
// frame, or with frames dropped, is the browser's CPU: never a reason.
// `badToSwitch` bad seconds among the last `window` switch to the lighter picture;
// `upAfterMs` of good ones on it try the camera's own again, and a try that has to
// come back down within `bounceMs` doubles the wait (up to `upAfterMaxMs`). Each
// player has its own copy (player.adaptation), which a page or a test may change.
export const ADAPTATION = {
  window: 4,
  badToSwitch: 3,
  loss: 0.05,
  rttRiseMs: 250,
  rttAloneMs: 1500,
  upAfterMs: 30000,
  upAfterMaxMs: 600000,
  bounceMs: 60000,
  switchTimeoutMs: 10000, // a new session must show its picture within this
};

export class LinkJudge {
  // `adaptationOf()`: the player's settings now (player.adaptation, which a page may replace).
  constructor(adaptationOf) {
    this.adaptationOf = adaptationOf;
    this.reset();
  }

  get adaptation() {
    return this.adaptationOf();
  }

  // A new camera or a restart: nothing is known of the link.
  reset() {
    this.quality = []; // the last seconds: true for a bad one
    this.goodMs = 0; // good time in a row on the lighter picture
    this.upAfterMs = 0; // the wait before trying the camera's own picture again
    this.upAt = 0; // when the last try to go back up was made
    this.needKbps = 0; // what the camera's own picture needs: its bitrate when it went well
    this.minRtt = Infinity; // the session's lowest round trip (s): the link without a queue
    this.losses = []; // the last seconds: true for one that lost packets
  }

  // Another picture plays now (a new session, a new connection): its seconds start afresh.
  newPicture() {
    this.quality = [];
    this.goodMs = 0;
    this.minRtt = Infinity;
    this.losses = [];
  }

  // The camera's own picture struggled lately (a weak link takes its session down
  // within seconds): a lost connection then comes back with the lighter one.
  struggling() {
    return this.quality.filter(Boolean).length >= 2;
  }

  // Going down to the lighter picture. Down again soon after going up: that try
  // failed, so the next waits longer.
  wentDown() {
    if (this.upAt && performance.now() - this.upAt < this.adaptation.bounceMs) this.backOffUp();
  }

  backOffUp() {
    const a = this.adaptation;
    this.upAfterMs = Math.min((this.upAfterMs || a.upAfterMs) * 2, a.upAfterMaxMs);
  }

  // One second of getStats (the video's inbound-rtp now and a second ago, the
  // selected candidate pair, the bitrate) on the camera's own picture (`own`) or on
  // the lighter one chosen by itself (`auto`). Returns what this second was like
  // (`link`: "good" or the network's reasons), whether the browser decoded nothing
  // new although packets came (`stalled`: its CPU), and what to do: "down", "up" or null.
  second({ inbound, last, pair, kbps, own, auto, saveData }) {
    const a = this.adaptation;
    const lost = Math.max(0, inbound.packetsLost - last.packetsLost);
    const got = inbound.packetsReceived - last.packetsReceived;
    const stalled = got > 0 && inbound.framesDecoded === last.framesDecoded;
    this.losses = [...this.losses, lost > 0].slice(-a.window);
    const lostLately = this.losses.includes(true);
    const rtt = pair?.currentRoundTripTime;
    if (rtt > 0) this.minRtt = Math.min(this.minRtt, rtt);
    const rise = rtt > 0 ? (rtt - this.minRtt) * 1000 : 0;
    const queued = (lostLately && rise > a.rttRiseMs) || rise > a.rttAloneMs;
    const estimate = (pair?.availableIncomingBitrate ?? 0) / 1000;
    const short = lostLately && estimate > 0 && this.needKbps > 0 && estimate < this.needKbps;
    const lossy = lost / Math.max(1, lost + got) > a.loss;
    const bad = lossy || queued || short;
    const link = bad ? [lossy && "loss", queued && "rtt", short && "bandwidth"].filter(Boolean).join(",") : "good";
    this.quality = [...this.quality, bad].slice(-a.window);
    if (own) {
      // What the camera's own picture needs, from its good seconds (the first ones
      // carry the catch-up burst).
      if (!bad && this.quality.length > 2) {
        this.needKbps = this.needKbps ? 0.8 * this.needKbps + 0.2 * kbps : kbps;
      }
      const bads = this.quality.filter(Boolean).length;
      const down = this.quality.length >= a.window && bads >= a.badToSwitch && !saveData;
      return { link, stalled, act: down ? "down" : null };
    }
    if (!auto || saveData) return { link, stalled, act: null };
    this.goodMs = bad ? 0 : this.goodMs + 1000;
    if (this.goodMs < (this.upAfterMs || a.upAfterMs)) return { link, stalled, act: null };
    this.upAt = performance.now();
    this.goodMs = 0; // a try that fails counts its wait from the start again
    return { link, stalled, act: "up" };
  }
}
