/**
 * docs/grafana-dashboard.json: every query is valid PromQL (the Prometheus project's own parser,
 * @prometheus-io/lezer-promql) and names only metrics that the hub's registry exports.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/plugins/metrics.js';
import { REPO_ROOT } from '../e2e/spawn.js';

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
  datasource?: { uid: string };
}

const dashboard = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string }[] } };
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** The query as Prometheus receives it from Grafana: the dashboard's variables replaced. */
const expand = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.+');

/** Metric names in the vector selectors of `expr`, and whether the parser found a syntax error. */
function analyse(expr: string): { names: string[]; error: boolean } {
  const names: string[] = [];
  let error = false;
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) error = true;
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') names.push(expr.slice(node.from, node.to));
    },
  });
  return { names, error };
}

describe('docs/grafana-dashboard.json', () => {
  it('has queries on every chart and uses the datasource variable', () => {
    expect(queries.length).toBeGreaterThan(10);
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
  });

  it('queries parse as PromQL and name only metrics the hub exports', async () => {
    const exported = new Set(
      (await createMetrics().registry.metrics())
        .split('\n')
        .filter((l) => l.startsWith('# TYPE '))
        .map((l) => l.split(' ')[2]),
    );
    expect(exported).toContain('switchboard_build_info');
    for (const { panel, expr } of queries) {
      const { names, error } = analyse(expand(expr));
      expect(error, `${panel}: ${expr}`).toBe(false);
      expect(names.length, panel).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${panel}: ${name}`).toContain(name.replace(/_(bucket|count|sum)$/, ''));
    }
  });

  it('the check catches a bad query and an unknown metric', () => {
    expect(analyse(expand('sum by (le (rate(switchboard_messages_sent_total[$__rate_interval]))')).error).toBe(true);
    expect(analyse('rate(switchboard_no_such_metric_total[5m])').names).toEqual(['switchboard_no_such_metric_total']);
  });
});
