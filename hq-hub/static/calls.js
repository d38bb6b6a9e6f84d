// The call page's recording: played from HQ when HQ holds it; otherwise asked of the site
// (POST …/recording/fetch) and the call polled until the recording arrives, with the state
// shown meanwhile and a clear word when the site is offline or slow. Kept apart from
// console.js so the call records stay one module.
"use strict";

(function () {
  const box = document.getElementById("recording");
  if (!box) return;
  const audio = box.querySelector("audio");
  const status = document.getElementById("recording-status");
  const download = document.getElementById("recording-download");
  const say = (text, isError) => {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  };
  const ready = () => {
    box.dataset.state = "held";
    audio.src = box.dataset.audio;
    download.hidden = false;
    say("", false);
  };
  if (box.dataset.state === "held") return;

  const ask = async () => {
    const response = await fetch(box.dataset.fetch, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || box.dataset.msgFailed);
    return answer.state;
  };
  const held = async () => {
    const response = await fetch(box.dataset.call);
    if (!response.ok) return false;
    const call = await response.json();
    return Boolean(call.recording && call.recording.held);
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  (async () => {
    try {
      box.dataset.state = "fetching";
      say(box.dataset.msgFetching, false);
      const state = await ask();
      if (state === "held") return ready();
      if (state === "site_offline") {
        box.dataset.state = "offline";
        return say(box.dataset.msgOffline, true);
      }
      // Requested: the site uploads it next; poll for two minutes.
      for (let i = 0; i < 120; i += 1) {
        await sleep(1000);
        if (await held()) return ready();
      }
      box.dataset.state = "slow";
      say(box.dataset.msgSlow, true);
    } catch (error) {
      box.dataset.state = "failed";
      say(`${box.dataset.msgFailed}: ${error.message}`, true);
    }
  })();
})();
