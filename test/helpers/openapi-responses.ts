/**
 * Checks every response a test hub answers against the OpenAPI document that hub publishes
 * (`app.swagger()`, the same as `/docs/json`), with Ajv. A violation is recorded when a documented
 * route answers
 * - a status its operation does not declare;
 * - a media type the declared response does not list;
 * - a JSON body that does not match the declared schema. Objects are checked closed (no property the
 *   schema does not name): Fastify serializes with the schema and silently drops undeclared
 *   properties, so the handler's payload is checked before serialization, where a field the schema
 *   forgot is still there to be seen.
 * Routes the document hides (`/ws`, `/mcp`), unmatched URLs and HEAD requests are not checked.
 * `startTestHub` installs it; its `close()` fails with the violations, so the test that started the
 * hub fails.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Ajv, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: Json }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Json> };
}

/** `schema` with `#/components/schemas/…` references inlined and every object closed (`additionalProperties: false` unless it says otherwise). */
function closed(schema: Json, components: Record<string, Json>): Json {
  if (Array.isArray(schema)) return schema.map((s) => closed(s, components));
  if (schema === null || typeof schema !== 'object') return schema;
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const name = ref.replace('#/components/schemas/', '');
    if (!(name in components)) throw new Error(`Unresolvable $ref ${ref}`);
    return closed(components[name], components);
  }
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(schema)) {
    // `properties` maps names to schemas: close the schemas, never treat the map itself as one.
    out[key] = key === 'properties' && value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).map(([name, s]) => [name, closed(s, components)]))
      : closed(value, components);
  }
  if ((out.type === 'object' || 'properties' in out) && !('additionalProperties' in out)) out.additionalProperties = false;
  return out;
}

/** The media type's essence: `application/json; charset=utf-8` → `application/json`. */
function essence(contentType: unknown): string {
  return String(contentType ?? '').split(';')[0].trim().toLowerCase();
}

/** Installs the checks on `app` (before it is ready). @returns the violations found so far, as lines. */
export function checkResponsesAgainstDocument(app: FastifyInstance): string[] {
  const violations: string[] = [];
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajvFormats.default(ajv);
  const validators = new Map<string, ValidateFunction>();
  let document: Document | undefined;
  /** Requests whose body was checked before serialization. */
  const checked = new WeakSet<FastifyRequest>();

  /** The operation of the request's route, or undefined when the document does not have it. */
  function operationOf(req: FastifyRequest): { operation: Operation; name: string } | undefined {
    const url = req.routeOptions.url;
    if (!url || req.method === 'HEAD') return undefined;
    document ??= app.swagger() as unknown as Document;
    const path = url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation = document.paths[path]?.[req.method.toLowerCase()];
    return operation && { operation, name: `${req.method} ${path}` };
  }

  function record(req: FastifyRequest, name: string, status: number, problem: string): void {
    violations.push(`${name} (${req.method} ${req.url}) answered ${status}: ${problem}`);
  }

  /** Checks `body` (parsed JSON) against the declared schema for the status and media type. */
  function checkBody(req: FastifyRequest, name: string, status: number, mediaType: string, schema: Json, body: unknown): void {
    const key = `${name} ${status} ${mediaType}`;
    let validate = validators.get(key);
    if (!validate) {
      validate = ajv.compile(closed(schema, document!.components?.schemas ?? {}) as object);
      validators.set(key, validate);
    }
    if (!validate(body)) record(req, name, status, `body does not match its schema: ${ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 500)}`);
  }

  /** The declared response for the reply's status, or undefined (recorded as a violation). */
  function declared(req: FastifyRequest, reply: FastifyReply) {
    const found = operationOf(req);
    if (!found) return undefined;
    const response = found.operation.responses[String(reply.statusCode)];
    if (!response) {
      record(req, found.name, reply.statusCode, `status not declared (declared: ${Object.keys(found.operation.responses).join(', ')})`);
      return undefined;
    }
    return { ...found, response };
  }

  // Before serialization: the payload as the handler built it, so fields the schema lacks are visible.
  app.addHook('preSerialization', async (req, reply, payload) => {
    const found = declared(req, reply);
    checked.add(req);
    if (!found) return payload;
    const json = found.response.content?.['application/json'];
    if (!json?.schema) {
      // A 204 goes out without a body whatever the handler passed to send().
      if (reply.statusCode !== 204) record(req, found.name, reply.statusCode, 'a JSON body where the document declares none');
      return payload;
    }
    // JSON round trip: what a full serializer would send (Dates as strings, undefined left out).
    checkBody(req, found.name, reply.statusCode, 'application/json', json.schema, JSON.parse(JSON.stringify(payload)));
    return payload;
  });

  // Every reply: the status (replies without a serialized payload: 204, files, strings, errors sent as text) and the media type.
  app.addHook('onSend', async (req, reply, payload) => {
    if (checked.has(req)) return payload;
    const found = declared(req, reply);
    if (!found) return payload;
    const content = found.response.content;
    if (!content) {
      if (payload !== undefined && payload !== null && payload !== '' && reply.statusCode !== 204) {
        record(req, found.name, reply.statusCode, 'a body where the document declares none');
      }
      return payload;
    }
    const mediaType = essence(reply.getHeader('content-type'));
    if (content['*/*']) return payload;
    if (!content[mediaType]) {
      record(req, found.name, reply.statusCode, `media type ${mediaType || '(none)'} not declared (declared: ${Object.keys(content).join(', ')})`);
      return payload;
    }
    const schema = content[mediaType].schema;
    if (mediaType === 'application/json' && schema && typeof payload === 'string') {
      checkBody(req, found.name, reply.statusCode, mediaType, schema, JSON.parse(payload));
    }
    return payload;
  });

  return violations;
}
