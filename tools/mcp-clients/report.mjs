// What the node client programs share: one line per check, and short renderings of results.

/// A reporter for `label` ("client mode transport"): `check(name, ok, detail)` prints one line
/// and counts it; `failed()` / `passed()` give the counts.
export function reporter(label) {
  const [client, mode, transport] = [...(label ?? 'ts - -').split(/\s+/), '-', '-', '-'];
  let passed = 0;
  let failed = 0;
  return {
    check(name, ok, detail = '') {
      ok ? passed++ : failed++;
      let line = `${client.padEnd(3)} ${mode.padEnd(7)} ${transport.padEnd(11)} ${name.padEnd(30)} ${ok ? 'PASS' : 'FAIL'}`;
      if (!ok && detail) line += `  ${detail}`;
      console.log(line);
      return ok;
    },
    passed: () => passed,
    failed: () => failed,
  };
}

export const short = (v, n = 400) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length <= n ? s : s.slice(0, n) + '...';
};

export const textOf = (r) => (r?.content ?? []).map((c) => c.text ?? '').join(' ');
