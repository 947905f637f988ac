import { describe, expect, it } from 'vitest';
import { CoalescingRunner } from '../../src/events/coalescing-runner.js';

/** A job whose runs each wait for `release()`; counts runs started. */
function gatedJob() {
  let runs = 0;
  let open: (() => void)[] = [];
  const job = async () => {
    runs++;
    await new Promise<void>((resolve) => open.push(resolve));
  };
  const release = () => {
    const waiting = open;
    open = [];
    for (const f of waiting) f();
  };
  return { job, release, runs: () => runs, waiting: () => open.length };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('CoalescingRunner', () => {
  it('runs once per wake when idle, and never two runs at once', async () => {
    const g = gatedJob();
    const runner = new CoalescingRunner(g.job);
    runner.wake();
    runner.wake();
    await tick();
    expect(g.runs()).toBe(1);
    expect(g.waiting()).toBe(1);
    g.release();
    await tick();
    expect(g.runs()).toBe(2); // the wake during the run asked for exactly one more
    g.release();
    await runner.idle();
    expect(g.runs()).toBe(2);
  });

  it('folds many wakes during a run into one more run, and starts afresh after idle', async () => {
    const g = gatedJob();
    const runner = new CoalescingRunner(g.job);
    runner.wake();
    for (let i = 0; i < 10; i++) runner.wake();
    g.release();
    await tick();
    g.release();
    await runner.idle();
    expect(g.runs()).toBe(2);
    runner.wake();
    await tick();
    expect(g.runs()).toBe(3);
    g.release();
    await runner.idle();
  });

  it('does not lose a wake that arrives as the last run finishes', async () => {
    let runs = 0;
    const runner: CoalescingRunner = new CoalescingRunner(async () => {
      runs++;
      // The job's own last act wakes the runner (an event dispatched while it finished).
      if (runs === 1) queueMicrotask(() => runner.wake());
    });
    runner.wake();
    await runner.idle();
    await tick();
    await runner.idle();
    expect(runs).toBe(2);
  });
});
