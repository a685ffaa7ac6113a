/**
 * A background job in a panel: submit it, follow its progress over the event stream, cancel it, and
 * draw its result when it finishes. Each panel follows at most one job; starting another cancels it.
 */
import { ApiCallError, api } from "./api.ts";
import { el, showError } from "./dom.ts";

export interface JobView<R> {
  id: string;
  status: "queued" | "running" | "done" | "failed" | "cancelled";
  progress: { done: number; total: number } | null;
  position?: number;
  result?: R;
  error?: { message: string; fix?: string };
}

export interface JobPanel<R> {
  /** The POST /api/jobs body. */
  request: Record<string, unknown>;
  /** Status text while it runs, e.g. "Patching: 3 / 10 runs". */
  running(progress: { done: number; total: number }): string;
  /** Draws a finished job's result into `host`; returns the status line. */
  show(host: HTMLElement, result: R): Promise<string>;
}

const following = new Map<HTMLElement, { id: string; stream: AbortController }>();

/** Cancels the panel's running job and stops following it; resolves with its final state (null if it had finished). */
async function cancelJob<R>(out: HTMLElement): Promise<JobView<R> | null> {
  const current = following.get(out);
  if (!current) return null;
  following.delete(out);
  // It may have just finished: then there is nothing to cancel (409). Cancel before closing the stream:
  // a closed stream alone also cancels it server-side, and then DELETE would have no final view to return.
  const view = await api.delete<JobView<R>>(`/api/jobs/${current.id}`).catch(() => null);
  current.stream.abort();
  return view;
}

export async function runJob<R>(out: HTMLElement, panel: JobPanel<R>): Promise<void> {
  await cancelJob(out);
  delete out.dataset.ready;
  let job: JobView<R>;
  try {
    job = await api.post<JobView<R>>("/api/jobs", panel.request);
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
    const view = await cancelJob<R>(out);
    if (view) await render(view);
  });
  const resultHost = el("div");
  out.replaceChildren(el("div", { className: "job-row" }, [bar, status, cancel]), resultHost);

  const render = async (view: JobView<R>) => {
    out.dataset.status = view.status;
    const p = view.progress;
    if (p && p.total > 0) bar.value = p.done / p.total;
    if (view.status === "queued") status.textContent = `Queued (${view.position ?? 0} ahead)…`;
    else if (view.status === "running") status.textContent = p ? panel.running(p) : "Starting…";
    else {
      cancel.remove();
      if (view.status === "done" && view.result) {
        bar.value = 1;
        status.textContent = await panel.show(resultHost, view.result);
        out.dataset.ready = "true";
      } else if (view.status === "failed") {
        showError(out, new ApiCallError(view.error?.message ?? "The job failed", view.error?.fix));
      } else status.textContent = "Cancelled.";
    }
  };

  await render(job);
  const stream = new AbortController();
  following.set(out, { id: job.id, stream });
  const isCurrent = () => following.get(out)?.id === job.id;
  const onEvent = (data: string) => {
    const view = JSON.parse(data) as JobView<R>;
    if ((view.status === "done" || view.status === "failed" || view.status === "cancelled") && isCurrent())
      following.delete(out);
    void render(view);
  };
  // The stream ends after the final event; ending or failing before that means the server went away.
  const lost = (err?: unknown) => {
    if (!isCurrent()) return;
    following.delete(out);
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
