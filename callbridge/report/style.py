"""The call page's stylesheet and script, inlined into every page (it fetches nothing)."""

from typing import Final

CSS: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 24px 40px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:18px 0 6px}h2{font-size:16px;margin:22px 0 8px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dt{color:#5b6475}dd{margin:0}
.scroll{overflow-x:auto;border:1px solid #d8dce4;border-radius:4px}
svg text{font-size:11px;fill:#39404f}
.lane-name{font-weight:600;font-size:12px}
.baseline{stroke:#e3e6ec}.axis-line,.tick{stroke:#8a92a3}
.wave{stroke-width:1;fill:none}.wave.caller{stroke:#2f6fd6}.wave.agent{stroke:#1d9a6c}
rect.turn.caller{fill:#2f6fd6;opacity:.35}rect.turn.agent{fill:#1d9a6c;opacity:.35}
.latency line{stroke:#b35c00;stroke-width:2}.latency text{fill:#b35c00}
.pause{fill:#f2c14e;opacity:.3}
.barge-in line{stroke:#d12f2f;stroke-width:2}.barge-in text{fill:#d12f2f;font-weight:600}
.mark line{stroke-width:1;stroke-dasharray:3 3}.mark text{font-size:10px}
.mark.stop_audio line{stroke:#d12f2f}.mark.tool line{stroke:#7b3fc4}
.mark.tool text{fill:#7b3fc4}.mark.dtmf line{stroke:#c47a00}.mark.dtmf text{fill:#c47a00}
.mark.end line{stroke:#1d2330;stroke-dasharray:none;stroke-width:2}.mark.event line{stroke:#a0a7b4}
.mark.end text{text-anchor:end;font-weight:600}
.mark.event text,.mark.stop_audio text{display:none}
#cursor{stroke:#1d2330;stroke-width:1}
.legend span{margin-right:14px}
.legend i{display:inline-block;width:12px;height:8px;margin-right:4px}
ol.conversation{list-style:none;padding:0;margin:0}
ol.conversation li{display:grid;grid-template-columns:64px 110px 1fr;gap:8px;padding:4px 6px;
 border-bottom:1px solid #eef0f4;cursor:pointer}
ol.conversation li:hover,ol.conversation li.selected{background:#f3f6fb}
.time{color:#5b6475;font-variant-numeric:tabular-nums}.who{font-weight:600}
li.caller .who{color:#2f6fd6}li.agent .who{color:#1d9a6c}li.barge-in .who{color:#d12f2f}
li.pause .who{color:#a07800}li.mark .who{color:#7b3fc4}
.latency-note{color:#b35c00;margin-left:8px;white-space:nowrap}
.unheard{color:#9aa1ad;text-decoration:line-through}
table.figures{border-collapse:collapse}table.figures td{padding:2px 12px 2px 0;vertical-align:top}
table.figures td:first-child{color:#5b6475}
#cursor-time{font-variant-numeric:tabular-nums;color:#5b6475}
"""

SCRIPT: Final = """
(function () {
  "use strict";
  var svg = document.getElementById("timeline-svg");
  var cursor = document.getElementById("cursor");
  var readout = document.getElementById("cursor-time");
  var left = Number(svg.getAttribute("data-left"));
  var scale = Number(svg.getAttribute("data-px-per-s"));
  function clock(t) {
    var m = Math.floor(t / 60), s = t - 60 * m;
    return m + ":" + (s < 10 ? "0" : "") + s.toFixed(2);
  }
  function show(x) {
    cursor.setAttribute("x1", x);
    cursor.setAttribute("x2", x);
    cursor.setAttribute("visibility", "visible");
    readout.textContent = clock(Math.max(0, (x - left) / scale));
  }
  svg.addEventListener("mousemove", function (event) {
    var box = svg.getBoundingClientRect();
    show((event.clientX - box.left) * svg.viewBox.baseVal.width / box.width);
  });
  var rows = document.querySelectorAll("ol.conversation li[data-t]");
  Array.prototype.forEach.call(rows, function (row) {
    row.addEventListener("click", function () {
      Array.prototype.forEach.call(rows, function (r) { r.classList.remove("selected"); });
      row.classList.add("selected");
      var x = left + Number(row.getAttribute("data-t")) * scale;
      show(x);
      svg.parentNode.scrollLeft = Math.max(0, x - svg.parentNode.clientWidth / 2);
    });
  });
})();
"""
