/**
 * Test helpers: recording a SessionManager's events and waiting for them with a deadline.
 */

/**
 * Records the events of `emitter` named in `names`, in order.
 * @param {import('node:events').EventEmitter} emitter
 * @param {string[]} names
 */
export function recordEvents(emitter, names) {
  /** @type {{name: string, args: any[]}[]} */
  const events = [];
  /** @type {Set<() => void>} */
  const watchers = new Set();
  for (const name of names) {
    emitter.on(name, (...args) => {
      events.push({ name, args });
      for (const watcher of watchers) watcher();
    });
  }
  return {
    events,
    /** @param {string} name @returns {any[]} the first argument of every `name` event */
    of(name) {
      return events.filter((e) => e.name === name).map((e) => e.args[e.name === 'notifyClientToLogout' ? 1 : 0]);
    },
    /**
     * Resolves once `predicate()` is true, rejects after `timeout` ms.
     * @param {() => boolean} predicate
     * @param {number} [timeout]
     * @param {string} [what] description for the failure message
     */
    until(predicate, timeout = 8000, what = 'the expected events') {
      if (predicate()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate()) return;
          clearTimeout(timer);
          watchers.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`timed out after ${timeout} ms waiting for ${what}; got ${JSON.stringify(events.map((e) => [e.name, e.args.at(-1)]))}`));
        }, timeout);
        watchers.add(check);
      });
    },
  };
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
