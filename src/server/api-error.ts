/** The one error shape of the JSON API: `{ error: { message, fix? } }` with a 4xx/5xx status. */
export interface ErrorBody {
  error: { message: string; fix?: string };
}

/** An error meant for the user: the message says what is wrong, `fix` what to do about it. */
export class ApiError extends Error {
  /** Extra response headers (e.g. Retry-After on a 429). */
  readonly headers: Record<string, string> = {};

  constructor(
    readonly status: number,
    message: string,
    readonly fix?: string,
  ) {
    super(message);
  }

  withHeader(name: string, value: string): this {
    this.headers[name] = value;
    return this;
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, ...(this.fix ? { fix: this.fix } : {}) } };
  }
}
