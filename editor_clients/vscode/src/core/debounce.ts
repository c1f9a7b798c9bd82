/** Debounce: the last call of a burst runs after `ms` of quiet. */
export interface Debounced<A extends unknown[]> { (...args: A): void; flush(): void; cancel(): void }

export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): Debounced<A> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: A | undefined;
  const run = () => {
    timer = undefined;
    if (pending) {
      const args = pending;
      pending = undefined;
      fn(...args);
    }
  };
  const debounced = ((...args: A) => {
    pending = args;
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, ms);
  }) as Debounced<A>;
  debounced.flush = () => {
    if (timer) clearTimeout(timer);
    run();
  };
  debounced.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    pending = undefined;
  };
  return debounced;
}

/**
 * Presence from window focus (§5.3): `idle` when the window loses focus, `away` after
 * `awayMs` unfocused, `active` again on focus. Calls `send` only on changes.
 */
export class FocusPresence {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private current: "active" | "idle" | "away" = "active";

  constructor(private readonly send: (status: "active" | "idle" | "away") => void, private readonly awayMs = 5 * 60_000) {}

  focusChanged(focused: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (focused) {
      this.set("active");
    } else {
      this.set("idle");
      this.timer = setTimeout(() => this.set("away"), this.awayMs);
    }
  }

  private set(status: "active" | "idle" | "away"): void {
    if (status !== this.current) {
      this.current = status;
      this.send(status);
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
