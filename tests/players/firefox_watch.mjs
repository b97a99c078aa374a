// Debian's Firefox ESR, headless, driven by puppeteer-core over WebDriver BiDi (never a
// browser download): opens the gateway's <cctv-player> for one camera, waits for the
// picture, reports what Firefox decoded, then takes the player off the page (WHEP DELETE).
//   node firefox_watch.mjs GATEWAY_URL CAMERA_ID TOKEN  ->  one JSON line
import puppeteer from "puppeteer-core";

const [gateway, camera, token] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: "/usr/bin/firefox-esr",
  headless: true,
  extraPrefsFirefox: {
    // No network but loopback here: nothing to download (so no OpenH264 either).
    "media.gmp-manager.updateEnabled": false,
    "media.autoplay.default": 0,
    // The gateway and Firefox meet on this one machine. With its host candidates
    // hidden behind mDNS names (the default), Firefox 153 never completed ICE with
    // the gateway here (0 bytes, the player reconnecting); with them shown it does.
    "media.peerconnection.ice.loopback": true,
    "media.peerconnection.ice.obfuscate_host_addresses": false,
  },
});
const result = {};
try {
  const page = await browser.newPage();
  await page.goto(`${gateway}/healthz`);
  const started = Date.now();
  Object.assign(
    result,
    await page.evaluate(
      async (camera, token) => {
        await import("/web/cctv-player.js");
        const player = document.createElement("cctv-player");
        player.setAttribute("camera", camera);
        player.setAttribute("lang", "en");
        player.token = token;
        document.body.append(player);
        const deadline = Date.now() + 20000;
        const stats = async () => {
          const out = { framesDecoded: 0, codec: null, width: 0, height: 0 };
          if (!player.pc) return out;
          const report = await player.pc.getStats();
          report.forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "video") {
              out.framesDecoded = s.framesDecoded || 0;
              out.width = s.frameWidth || 0;
              out.height = s.frameHeight || 0;
              const codec = report.get(s.codecId);
              if (codec) out.codec = codec.mimeType;
            }
          });
          return out;
        };
        let seen = await stats();
        while (Date.now() < deadline && (player.state !== "live" || seen.framesDecoded < 20)) {
          await new Promise((r) => setTimeout(r, 100));
          seen = await stats();
        }
        seen.state = player.state;
        seen.videoWidth = player.video.videoWidth;
        player.remove(); // ends the session with a WHEP DELETE
        await new Promise((r) => setTimeout(r, 500));
        return seen;
      },
      camera,
      token,
    ),
  );
  result.seconds = (Date.now() - started) / 1000;
} catch (error) {
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
