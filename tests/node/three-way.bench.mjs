// Benchmark: the CPU and memory of a three-way class (the desktop's headless participant with a
// 1280×720@30 camera, Debian's Chromium, Debian's Firefox ESR without H.264), once everyone
// decodes everyone. Each browser counts with all its processes. Prints figures; asserts nothing.
//
//   sudo CLASSROOM_SIGNALING_BIN=… CLASSROOM_BIN=… tests/node/in-lab-namespace.sh \
//        node tests/node/three-way.bench.mjs            (THREE_WAY_SECONDS, default 20)

import { readFileSync, readdirSync } from "node:fs";
import { cpus } from "node:os";
import { startThreeWay, waitFor, pageReceives, sleep } from "./three-way-lab.mjs";

const SECONDS = Number(process.env.THREE_WAY_SECONDS ?? 20);
const TICKS = 100; // USER_HZ on Linux

/** The pid and all its descendants. */
function tree(root) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(Number(entry));
    } catch { /* gone */ }
  }
  const all = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    all.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return all;
}

function usage(pids) {
  let ticks = 0, rssKb = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (rss) rssKb += Number(rss[1]);
    } catch { /* gone */ }
  }
  return { ticks, rssKb };
}

const lab = await startThreeWay({ desktopCamera: "1280x720@30" });
try {
  await waitFor("everyone to decode everyone", async () => {
    const desk = ["fox", "chrome"].every((u) => lab.desktopRemote(u)?.video?.camera?.framesDecoded > 30);
    const fox = await pageReceives(lab.firefoxPage, "desk");
    const chrome = await pageReceives(lab.chromePage, "fox");
    return desk && fox?.framesDecoded > 30 && chrome?.framesDecoded > 30;
  }, 60_000);
  await sleep(3000);
  const who = {
    desktop: [lab.desktop.pid],
    chromium: tree(lab.chromium.process().pid),
    firefox: tree(lab.firefox.process().pid),
    server: [lab.server.pid],
  };
  const before = Object.fromEntries(Object.entries(who).map(([name, pids]) => [name, usage(pids)]));
  const started = Date.now();
  await sleep(SECONDS * 1000);
  const wall = (Date.now() - started) / 1000;
  console.log(`three-way class: desktop camera 1280x720@30, browsers' fake cameras; ${wall.toFixed(1)} s measured`);
  console.log(`machine: ${cpus()[0]?.model ?? "unknown"}, ${cpus().length} cores`);
  for (const [name, pids] of Object.entries(who)) {
    const after = usage(tree(pids[0]));
    const cpu = ((after.ticks - before[name].ticks) / TICKS / wall) * 100;
    console.log(`  ${name.padEnd(9)} CPU ${cpu.toFixed(1).padStart(5)} % of one core  RSS ${(after.rssKb / 1024).toFixed(0).padStart(5)} MB  (${after.ticks ? pids.length : 0} processes at start)`);
  }
  const desk = lab.desktopStats();
  for (const remote of desk.remotes) {
    const v = remote.video.camera;
    console.log(`  desktop receives ${remote.userId}: ${v.codec} ${v.width}x${v.height} at ${v.fps.toFixed(0)} fps`);
  }
} finally {
  await lab.close();
}
