// Types for checking dashboard JSON against @grafana/schema with tsc (see check.mjs, which
// generates one .ts file per dashboard that imports these). Compile-time only: nothing runs.

import type { DataQuery } from '@grafana/schema';

// JsonOf<T>: the shape of T once written as JSON. @grafana/schema types enumerations as
// TypeScript string enums (FieldColorModeId.Thresholds), which a JSON string literal
// ("thresholds") is not assignable to; in JSON they are their values, so a string enum becomes
// the union of its values ("thresholds" | "palette-classic" | ...). Numeric enums accept their
// numeric literals as they are. Everything else maps member by member, so optionality, required
// members and excess-property checks of object literals stay exactly those of the schema.
export type JsonOf<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<JsonOf<U>>
      : T extends object
        ? { [K in keyof T]: JsonOf<T[K]> }
        : T;

// A Prometheus query target. @grafana/schema types panel targets as Record<string, unknown>
// and does not ship the Prometheus data source's query kind, so this is that kind as Grafana
// publishes it (PrometheusDataQuery: editorMode, exemplar, expr, format, instant, interval,
// intervalFactor, legendFormat, range) on top of the package's own DataQuery (refId, hide,
// datasource, queryType, key).
export interface PrometheusQuery extends DataQuery {
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  expr: string;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  interval?: string;
  intervalFactor?: number;
  legendFormat?: string;
  range?: boolean;
}
