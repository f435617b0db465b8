// memnet's page: pick a picture, restore it through the HTTP API as a job, compare, download.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let tasks = {};  // task name → its title and level field, as /v1/models describes them
let file = null;
let urls = [];

function headers() {
  const token = $("token").value.trim();
  if (token) localStorage.setItem("memnet-token", token);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function problem(response) {
  // Every API error is {"error": "one line"}; anything else is told by its status.
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (_) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function setStatus(text, fraction) {
  $("status").hidden = text === null;
  $("status-text").textContent = text || "";
  if (fraction === null) $("progress").removeAttribute("value");
  else $("progress").value = fraction;
}

function fillTasks() {
  const current = $("task").value;
  $("task").replaceChildren(...Object.values(tasks).map((t) => new Option(t.title, t.task)));
  if (current in tasks) $("task").value = current;
}

function fillLevels() {
  const level = tasks[$("task").value].level;
  $("level-name").textContent = level.title;
  $("level").replaceChildren(...level.choices.map((c) => {
    const option = new Option(c.label, String(c.value));
    option.selected = c.value === level.default;
    return option;
  }));
  const fitting = models.filter((m) => m.task === $("task").value || m.task === null);
  $("model").replaceChildren(...fitting.map((m) => {
    const option = new Option(m.baseline ? `${m.name} (no network)` : m.name, m.name);
    option.title = [m.description, ...Object.entries(m.metrics).map(([k, v]) => `${k}: ${v}`)].join("\n");
    option.selected = m.default;
    return option;
  }));
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    showError(`cannot list the models: ${await problem(response)}`);
    return;
  }
  const answer = await response.json();
  models = answer.models;
  tasks = Object.fromEntries(answer.tasks.map((t) => [t.task, t]));
  showError("");
  fillTasks();
  fillLevels();
}

function choose(chosen) {
  if (!chosen) return;
  file = chosen;
  $("chosen").textContent = `${file.name} (${(file.size / 1024).toFixed(1)} KiB)`;
  $("go").disabled = false;
  showError("");
}

function track(url) { urls.push(url); return url; }

async function restore(event) {
  event.preventDefault();
  if (!file) return;
  showError("");
  $("go").disabled = true;
  $("result").hidden = true;
  urls.forEach((u) => URL.revokeObjectURL(u));
  urls = [];
  const form = new FormData();
  const task = $("task").value;
  form.append("image", file, file.name);
  form.append("task", task);
  form.append(tasks[task].level.field, $("level").value);
  if ($("model").value) form.append("model", $("model").value);
  form.append("mode", "job");  // a job reports progress; small ones finish at once
  setStatus("uploading…", null);
  try {
    const answer = await fetch("/v1/restore", { method: "POST", body: form, headers: headers() });
    if (!answer.ok) throw new Error(await problem(answer));
    let job = await answer.json();
    while (job.state === "queued" || job.state === "running") {
      const where = job.state === "queued" ? `waiting (${job.queue_position ?? 0} ahead)` : `restoring ${Math.round(job.progress * 100)} %`;
      setStatus(where, job.state === "queued" ? null : job.progress);
      await new Promise((done) => setTimeout(done, 300));
      const poll = await fetch(`/v1/jobs/${job.id}`, { headers: headers() });
      if (!poll.ok) throw new Error(await problem(poll));
      job = await poll.json();
    }
    if (job.state !== "done") throw new Error(job.error ? job.error.message : `the job was ${job.state}`);
    setStatus("downloading the result…", 1);
    const result = await fetch(job.result, { headers: headers() });
    if (!result.ok) throw new Error(await problem(result));
    show(await result.blob(), job);
    setStatus(null, 0);
  } catch (error) {
    setStatus(null, 0);
    showError(error.message || String(error));
  } finally {
    $("go").disabled = false;
  }
}

function show(blob, job) {
  const after = $("after");
  const before = $("before");
  after.onload = () => {
    // Small results are shown larger (up to 640 px wide) so that the difference can be seen.
    before.style.setProperty("--shown-width", `${Math.max(after.naturalWidth, Math.min(640, 2 * after.naturalWidth))}px`);
    $("result").hidden = false;
  };
  before.src = track(URL.createObjectURL(file));
  after.src = track(URL.createObjectURL(blob));
  const link = $("download");
  link.href = after.src;
  link.download = job.filename;
  link.dataset.size = String(blob.size);
  $("result-info").textContent = `${job.filename}: ${job.width}×${job.height}, ${(blob.size / 1024).toFixed(1)} KiB, ${job.model} (${job.task} ${job.level})`;
}

function slide() {
  $("compare").style.setProperty("--cut", `${$("slider").value}%`);
}

function init() {
  $("token").value = localStorage.getItem("memnet-token") || "";
  $("task").addEventListener("change", fillLevels);
  $("token").addEventListener("change", loadModels);
  $("file").addEventListener("change", () => choose($("file").files[0]));
  $("options").addEventListener("submit", restore);
  $("slider").addEventListener("input", slide);
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((kind) => drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((kind) => drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
  slide();
  loadModels();
}

init();
