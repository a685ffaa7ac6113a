/**
 * Activation patching as a background job: submit, follow its progress over server-sent events, cancel,
 * and draw the resulting heatmap when it finishes.
 */
import type { Figure } from "../../viz/figure.ts";
// The request the server validates (type only: erased from the browser bundle).
import type { PatchingParams } from "../tasks.ts";
import { ApiCallError, api } from "./api.ts";
import { el, showError } from "./dom.ts";
import { inputsList, showFigure } from "./figure-panel.ts";

interface JobView {
  id: string;
  status: "queued" | "running" | "done" | "failed" | "cancelled";
  progress: { done: number; total: number } | null;
  position?: number;
  result?: {
    figure: Figure;
    summary: string;
    caption?: string;
    inputs?: { label: string; value: string | string[] }[];
  };
  error?: { message: string; fix?: string };
}

let current: { id: string; stream: AbortController } | null = null;

/** Cancels the running job and stops following it; resolves with its final state (null if it had finished). */
export async function cancelCurrentJob(): Promise<JobView | null> {
  if (!current) return null;
  const { id, stream } = current;
  current = null;
  // It may have just finished: then there is nothing to cancel (409). Cancel before closing the stream:
  // a closed stream alone also cancels it server-side, and then DELETE would have no final view to return.
  const view = await api.delete<JobView>(`/api/jobs/${id}`).catch(() => null);
  stream.abort();
  return view;
}

export async function runPatching(out: HTMLElement, params: PatchingParams): Promise<void> {
  await cancelCurrentJob();
  delete out.dataset.ready;
  let job: JobView;
  try {
    const { clean, corrupted, answer, wrong, target } = params;
    job = await api.post<JobView>("/api/jobs", { kind: "patching", clean, corrupted, answer, wrong, target });
  } catch (err) {
    showError(out, err);
    return;
  }
  const status = el("div", { className: "job-status" });
  const bar = el("progress") as HTMLProgressElement;
  bar.max = 1;
  bar.value = 0;
  const cancel = el("button", { text: "Cancel" });
  cancel.type = "button";
  cancel.addEventListener("click", async () => {
    const view = await cancelCurrentJob();
    if (view) await render(view);
  });
  const figureHost = el("div");
  out.replaceChildren(el("div", { className: "job-row" }, [bar, status, cancel]), figureHost);

  const render = async (view: JobView) => {
    out.dataset.status = view.status;
    const p = view.progress;
    if (p && p.total > 0) bar.value = p.done / p.total;
    if (view.status === "queued") status.textContent = `Queued (${view.position ?? 0} ahead)…`;
    else if (view.status === "running")
      status.textContent = p ? `Patching: ${p.done} / ${p.total} runs` : "Starting…";
    else {
      cancel.remove();
      if (view.status === "done" && view.result) {
        bar.value = 1;
        status.textContent = view.result.summary;
        await showFigure(figureHost, view.result.figure, view.result.caption);
        if (view.result.inputs) figureHost.prepend(inputsList(view.result.inputs));
        out.dataset.ready = "true";
      } else if (view.status === "failed") {
        showError(out, new ApiCallError(view.error?.message ?? "The job failed", view.error?.fix));
      } else status.textContent = "Cancelled.";
    }
  };

  await render(job);
  const stream = new AbortController();
  current = { id: job.id, stream };
  const onEvent = (data: string) => {
    const view = JSON.parse(data) as JobView;
    if (view.status === "done" || view.status === "failed" || view.status === "cancelled") {
      if (current?.id === view.id) current = null;
    }
    void render(view);
  };
  // The stream ends after the final event; ending or failing before that means the server went away.
  const lost = (err?: unknown) => {
    if (current?.id !== job.id) return;
    current = null;
    const refused = err instanceof ApiCallError && err.status !== undefined;
    showError(
      out,
      refused
        ? err
        : new ApiCallError(
            "Lost the connection to the server while the job was running.",
            "Reload the page to run it again.",
          ),
    );
  };
  void api.events(`/api/jobs/${job.id}/events`, onEvent, stream.signal).then(() => lost(), lost);
}
