/**
 * The latency summary `overlapped load` prints: percentiles in order, never
 * above the maximum, each an upper bound of the exact percentile within
 * hdr-histogram's 3 significant digits, and the maximum exact.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { LatencyRecorder } from '../../src/load/latency-recorder.js';

/** The exact percentile the way hdr-histogram counts: the smallest value with ceil(p% of n) samples at or below it. */
function exactPercentile(sorted: readonly number[], percentile: number): number {
  const rank = Math.max(1, Math.ceil((percentile / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

describe('LatencyRecorder.summary', () => {
  test('one sample in a wide bucket: p99 is not above max (178,559 against 178,497 µs before)', async () => {
    const recorder = await LatencyRecorder.create();
    try {
      recorder.record(178_497, 1);
      const summary = recorder.summary();
      assert.equal(summary.max, 178_497);
      assert.deepEqual(summary, { p50: 178_497, p90: 178_497, p99: 178_497, max: 178_497 });
    } finally {
      recorder.destroy();
    }
  });

  test('any samples: p50 <= p90 <= p99 <= max, max exact, each an upper bound within 0.1%', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 20_000_000 }), fc.integer({ min: 1, max: 50 })),
          { minLength: 1, maxLength: 200 },
        ),
        async (samples) => {
          const recorder = await LatencyRecorder.create();
          try {
            const all: number[] = [];
            for (const [value, count] of samples) {
              recorder.record(value, count);
              for (let i = 0; i < count; i++) all.push(value);
            }
            all.sort((a, b) => a - b);
            const s = recorder.summary();
            assert.equal(s.max, all[all.length - 1]);
            assert.ok(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max, JSON.stringify(s));
            for (const [p, got] of [
              [50, s.p50],
              [90, s.p90],
              [99, s.p99],
            ] as const) {
              const exact = exactPercentile(all, p);
              assert.ok(got >= exact, `p${p} ${got} below the exact ${exact}`);
              assert.ok(got <= exact * 1.001 + 1, `p${p} ${got} too far above the exact ${exact}`);
            }
          } finally {
            recorder.destroy();
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('nothing recorded: all zero', async () => {
    const recorder = await LatencyRecorder.create();
    try {
      assert.deepEqual(recorder.summary(), { p50: 0, p90: 0, p99: 0, max: 0 });
    } finally {
      recorder.destroy();
    }
  });
});
