/**
 * A local HTTP double of the Meilisearch endpoints Switchboard uses, written from Meilisearch's API
 * reference (https://www.meilisearch.com/docs/reference/api/overview), so the adapter's requests and
 * responses are exercised without a Meilisearch server:
 *
 * - PATCH/GET /indexes/{uid}/settings, POST /indexes/{uid}/documents (?primaryKey=),
 *   POST /indexes/{uid}/documents/delete-batch, DELETE /indexes/{uid}/documents,
 *   GET /tasks/{uid}, POST /indexes/{uid}/search, POST /multi-search, GET /health.
 * - Asynchronous writes: 202 with a summarized task `{taskUid, indexUid, status:"enqueued", type,
 *   enqueuedAt}`; tasks run in order and `GET /tasks/{uid}` shows the task object with `status`,
 *   `details`, `error`, `duration`, `enqueuedAt`/`startedAt`/`finishedAt`.
 * - Errors: `{message, code, type, link}` with the documented HTTP status.
 * - Auth: `Authorization: Bearer <master key | API key | tenant token>`; tenant tokens (HS256/384/512
 *   JWTs signed with an API key, `apiKeyUid`, `searchRules`, `exp`) only on the search routes, their
 *   rule filter ANDed to the query's.
 * - Search: words (all must match with matchingStrategy "all"; "last" drops trailing words), "phrases",
 *   prefix match on the last word, filter expressions (=, !=, >, >=, <, <=, TO, IN, NOT IN, EXISTS,
 *   NOT, AND, OR, parentheses, array form), sort, offset/limit, `_formatted` with highlight and crop,
 *   `_rankingScore`. Not modelled: typo tolerance, stemming, facets, geo, vector search.
 *
 * Test hooks: `requests` (every request received), `indexes` (state), `failTasks(n)` (the next n
 * tasks fail like a full disk would), `stop()`/`start()` (an outage on the same port).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Doc = Record<string, unknown>;

interface IndexState {
  uid: string;
  primaryKey: string | null;
  docs: Map<string, Doc>;
  settings: Record<string, unknown>;
  createdAt: string;
}

interface MeiliError {
  message: string;
  code: string;
  type: 'invalid_request' | 'internal' | 'auth' | 'system';
  link: string;
}

interface Task {
  uid: number;
  batchUid: number | null;
  indexUid: string | null;
  status: 'enqueued' | 'processing' | 'succeeded' | 'failed' | 'canceled';
  type: string;
  canceledBy: number | null;
  details: Record<string, unknown>;
  error: MeiliError | null;
  duration: string | null;
  enqueuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  apply: () => Record<string, unknown> | void;
}

export interface DoubleApiKey {
  uid: string;
  key: string;
  actions: string[];
  indexes: string[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  authorization: string | undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: MeiliError,
  ) {
    super(error.message);
  }
}

function meiliError(code: string, message: string, type: MeiliError['type'] = 'invalid_request'): MeiliError {
  return { message, code, type, link: `https://docs.meilisearch.com/errors#${code}` };
}

function fail(status: number, code: string, message: string, type: MeiliError['type'] = 'invalid_request'): never {
  throw new HttpError(status, meiliError(code, message, type));
}

const DEFAULT_RANKING_RULES = ['words', 'typo', 'proximity', 'attribute', 'sort', 'exactness'];
const SETTINGS_FIELDS = [
  'displayedAttributes', 'searchableAttributes', 'filterableAttributes', 'sortableAttributes', 'rankingRules',
  'stopWords', 'synonyms', 'distinctAttribute', 'typoTolerance', 'faceting', 'pagination', 'proximityPrecision',
  'separatorTokens', 'nonSeparatorTokens', 'dictionary', 'searchCutoffMs', 'localizedAttributes', 'facetSearch', 'prefixSearch',
];
const SEARCH_PARAMS = [
  'q', 'offset', 'limit', 'page', 'hitsPerPage', 'filter', 'facets', 'attributesToRetrieve', 'attributesToCrop', 'cropLength',
  'cropMarker', 'attributesToHighlight', 'highlightPreTag', 'highlightPostTag', 'showMatchesPosition', 'sort', 'matchingStrategy',
  'showRankingScore', 'showRankingScoreDetails', 'attributesToSearchOn', 'rankingScoreThreshold', 'distinct', 'locales',
];

function defaultSettings(): Record<string, unknown> {
  return {
    displayedAttributes: ['*'],
    searchableAttributes: ['*'],
    filterableAttributes: [],
    sortableAttributes: [],
    rankingRules: DEFAULT_RANKING_RULES,
    stopWords: [],
    synonyms: {},
    distinctAttribute: null,
    pagination: { maxTotalHits: 1000 },
  };
}

// ---------------------------------------------------------------------------------------------
// Text: tokens, query terms, matching, highlight and crop.

const WORD = /[\p{L}\p{N}]+/gu;

function words(text: string): { word: string; start: number; end: number }[] {
  return [...text.matchAll(WORD)].map((m) => ({ word: m[0].toLowerCase(), start: m.index!, end: m.index! + m[0].length }));
}

/** A query term: a word (the last one matches as a prefix unless the query ends with a space) or a phrase. */
interface Term {
  words: string[];
  prefix: boolean;
}

function parseQuery(q: string): Term[] {
  const terms: Term[] = [];
  const re = /"([^"]*)"|([^\s"]+)/g;
  for (const m of q.matchAll(re)) {
    if (m[1] !== undefined) {
      const ws = words(m[1]).map((w) => w.word);
      if (ws.length) terms.push({ words: ws, prefix: false });
    } else {
      for (const w of words(m[2])) terms.push({ words: [w.word], prefix: false });
    }
  }
  const last = terms[terms.length - 1];
  if (last && last.words.length === 1 && !/[\s"]$/.test(q)) last.prefix = true;
  return terms;
}

/** Token positions (in `tokens`) where the term matches, with the matched length of each token. */
function termMatches(term: Term, tokens: { word: string }[]): { index: number; lengths: number[] }[] {
  const found: { index: number; lengths: number[] }[] = [];
  for (let i = 0; i + term.words.length <= tokens.length; i++) {
    if (term.words.length === 1) {
      const [w] = term.words;
      const t = tokens[i].word;
      if (t === w || (term.prefix && t.startsWith(w))) found.push({ index: i, lengths: [w.length] });
    } else if (term.words.every((w, k) => tokens[i + k].word === w)) {
      found.push({ index: i, lengths: term.words.map((w) => w.length) });
    }
  }
  return found;
}

function searchableText(doc: Doc, attributes: string[]): string {
  const fields = attributes.includes('*') ? Object.keys(doc) : attributes;
  return fields
    .map((f) => doc[f])
    .filter((v) => typeof v === 'string' || typeof v === 'number')
    .join(' \n ');
}

/** Wraps matched tokens (only the matched part of a prefix match) in the highlight tags. */
function highlight(text: string, terms: Term[], pre: string, post: string): string {
  const tokens = words(text);
  const marks = new Map<number, number>();
  for (const term of terms) {
    for (const m of termMatches(term, tokens)) m.lengths.forEach((len, k) => marks.set(m.index + k, len));
  }
  let out = '';
  let at = 0;
  tokens.forEach((t, i) => {
    const len = marks.get(i);
    if (len === undefined) return;
    out += text.slice(at, t.start) + pre + text.slice(t.start, t.start + len) + post;
    at = t.start + len;
  });
  return out + text.slice(at);
}

/** Keeps `length` words around the first match, with `marker` where text was cut. */
function crop(text: string, terms: Term[], length: number, marker: string): string {
  const tokens = words(text);
  if (tokens.length <= length) return text;
  const first = Math.min(...terms.flatMap((t) => termMatches(t, tokens).map((m) => m.index)), Infinity);
  const centre = Number.isFinite(first) ? first : 0;
  const start = Math.max(0, Math.min(centre - Math.floor((length - 1) / 2), tokens.length - length));
  const end = start + length - 1;
  const from = start === 0 ? 0 : tokens[start].start;
  const to = end === tokens.length - 1 ? text.length : tokens[end].end;
  return (start > 0 ? marker : '') + text.slice(from, to) + (end < tokens.length - 1 ? marker : '');
}

// ---------------------------------------------------------------------------------------------
// Filters: https://www.meilisearch.com/docs/learn/filtering_and_sorting/filter_expression_reference

type Predicate = (doc: Doc) => boolean;

interface FilterToken {
  kind: 'op' | 'punct' | 'word' | 'string';
  text: string;
}

function tokenizeFilter(src: string): FilterToken[] {
  const out: FilterToken[] = [];
  const re = /\s*(?:(!=|>=|<=|=|>|<)|([()[\],])|'((?:\\.|[^'\\])*)'|"((?:\\.|[^"\\])*)"|([^\s()[\],=!<>'"]+))/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < src.length && (m = re.exec(src))) {
    at = re.lastIndex;
    if (m[1]) out.push({ kind: 'op', text: m[1] });
    else if (m[2]) out.push({ kind: 'punct', text: m[2] });
    else if (m[3] !== undefined) out.push({ kind: 'string', text: m[3].replace(/\\(.)/g, '$1') });
    else if (m[4] !== undefined) out.push({ kind: 'string', text: m[4].replace(/\\(.)/g, '$1') });
    else if (m[5]) out.push({ kind: 'word', text: m[5] });
  }
  if (src.slice(at).trim() !== '') fail(400, 'invalid_search_filter', `Was expecting a value but instead got \`${src.slice(at).trim()}\`.`);
  return out;
}

function values(doc: Doc, attribute: string): unknown[] {
  const v = doc[attribute];
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function equal(a: unknown, b: string): boolean {
  if (typeof a === 'number') return Number(b) === a;
  return String(a).toLowerCase() === b.toLowerCase();
}

function compare(a: unknown, op: string, b: string): boolean {
  const x = Number(a);
  const y = Number(b);
  if (typeof a !== 'number' || Number.isNaN(y)) return false;
  return op === '>' ? x > y : op === '>=' ? x >= y : op === '<' ? x < y : x <= y;
}

const KEYWORDS = new Set(['AND', 'OR', 'NOT', 'IN', 'TO', 'EXISTS']);

/** Parses one string filter expression; `attributes` collects the attributes it uses. */
function parseFilter(src: string, attributes: Set<string>): Predicate {
  const tokens = tokenizeFilter(src);
  let i = 0;
  const peek = () => tokens[i];
  const isWord = (text: string) => peek()?.kind === 'word' && peek().text.toUpperCase() === text;
  const expectValue = (): string => {
    const t = tokens[i++];
    if (!t || (t.kind !== 'word' && t.kind !== 'string') || (t.kind === 'word' && KEYWORDS.has(t.text.toUpperCase()))) {
      fail(400, 'invalid_search_filter', `Was expecting a value but instead got \`${t?.text ?? 'nothing'}\`.\n${src}`);
    }
    return t.text;
  };
  const list = (): string[] => {
    if (peek()?.text !== '[') fail(400, 'invalid_search_filter', `Expected \`[\` after \`IN\` keyword.\n${src}`);
    i++;
    const out: string[] = [];
    while (peek() && peek().text !== ']') {
      out.push(expectValue());
      if (peek()?.text === ',') i++;
    }
    if (peek()?.text !== ']') fail(400, 'invalid_search_filter', `Expected matching \`]\` after the list of field names given to \`IN[\`\n${src}`);
    i++;
    return out;
  };
  const condition = (): Predicate => {
    const attribute = expectValue();
    attributes.add(attribute);
    const t = peek();
    if (t?.kind === 'op') {
      i++;
      const v = expectValue();
      if (t.text === '=') return (d) => values(d, attribute).some((x) => equal(x, v));
      if (t.text === '!=') return (d) => !values(d, attribute).some((x) => equal(x, v));
      return (d) => values(d, attribute).some((x) => compare(x, t.text, v));
    }
    if (isWord('IN')) {
      i++;
      const vs = list();
      return (d) => values(d, attribute).some((x) => vs.some((v) => equal(x, v)));
    }
    if (isWord('EXISTS')) {
      i++;
      return (d) => attribute in d;
    }
    if (isWord('NOT')) {
      i++;
      if (isWord('IN')) {
        i++;
        const vs = list();
        return (d) => !values(d, attribute).some((x) => vs.some((v) => equal(x, v)));
      }
      if (isWord('EXISTS')) {
        i++;
        return (d) => !(attribute in d);
      }
      fail(400, 'invalid_search_filter', `Was expecting an operation \`=\`, \`!=\`, \`>=\`, \`>\`, \`<=\`, \`<\`, \`IN\`, \`NOT IN\`, \`TO\`, \`EXISTS\`, \`NOT EXISTS\`, \`IS NULL\`, \`IS NOT NULL\`, \`IS EMPTY\`, \`IS NOT EMPTY\`, \`CONTAINS\`, \`NOT CONTAINS\`, \`STARTS WITH\`, \`NOT STARTS WITH\`, \`_geoRadius\`, or \`_geoBoundingBox\` at \`${src}\`.`);
    }
    if (t && (t.kind === 'word' || t.kind === 'string') && tokens[i + 1]?.kind === 'word' && tokens[i + 1].text.toUpperCase() === 'TO') {
      const low = expectValue();
      i++;
      const high = expectValue();
      return (d) => values(d, attribute).some((x) => compare(x, '>=', low) && compare(x, '<=', high));
    }
    fail(400, 'invalid_search_filter', `Was expecting an operation \`=\`, \`!=\`, \`>=\`, \`>\`, \`<=\`, \`<\`, \`IN\`, \`NOT IN\`, \`TO\`, \`EXISTS\`, \`NOT EXISTS\` at \`${src}\`.`);
  };
  const unary = (): Predicate => {
    if (isWord('NOT')) {
      i++;
      const inner = unary();
      return (d) => !inner(d);
    }
    if (peek()?.text === '(') {
      i++;
      const inner = or();
      if (peek()?.text !== ')') fail(400, 'invalid_search_filter', `Expression \`(${src}\` is missing the following closing delimiter: \`)\`.`);
      i++;
      return inner;
    }
    return condition();
  };
  const and = (): Predicate => {
    const parts = [unary()];
    while (isWord('AND')) {
      i++;
      parts.push(unary());
    }
    return (d) => parts.every((p) => p(d));
  };
  const or = (): Predicate => {
    const parts = [and()];
    while (isWord('OR')) {
      i++;
      parts.push(and());
    }
    return (d) => parts.some((p) => p(d));
  };
  const predicate = or();
  if (i < tokens.length) fail(400, 'invalid_search_filter', `Found unexpected characters at the end of the filter: \`${tokens.slice(i).map((t) => t.text).join(' ')}\`.`);
  return predicate;
}

/** A filter in string or array form (outer array: AND; inner arrays: OR). */
function compileFilter(filter: unknown, attributes: Set<string>): Predicate {
  if (filter === undefined || filter === null) return () => true;
  if (typeof filter === 'string') return filter.trim() === '' ? () => true : parseFilter(filter, attributes);
  if (Array.isArray(filter)) {
    const parts = filter.map((f) => {
      if (Array.isArray(f)) {
        const alternatives = f.map((g) => compileFilter(g, attributes));
        return (d: Doc) => alternatives.some((p) => p(d));
      }
      return compileFilter(f, attributes);
    });
    return (d) => parts.every((p) => p(d));
  }
  fail(400, 'invalid_search_filter', 'Invalid value type: expected an array or a string');
}

// ---------------------------------------------------------------------------------------------
// Tenant tokens: https://www.meilisearch.com/docs/learn/security/tenant_token_reference

function b64urlJson(part: string): any {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------

export class MeiliDouble {
  readonly requests: RecordedRequest[] = [];
  readonly indexes = new Map<string, IndexState>();
  private readonly tasks: Task[] = [];
  private readonly queue: Task[] = [];
  private processing = false;
  private failing = 0;
  private server?: http.Server;
  private port = 0;

  constructor(
    readonly masterKey: string,
    readonly keys: DoubleApiKey[] = [],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on a free loopback port (or the port it had before a `stop()`). */
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops answering (connections refused) while keeping every index and task: an outage. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next `n` tasks to be processed fail (`no_space_left_on_device`, as on a full disk). */
  failTasks(n: number): void {
    this.failing = n;
  }

  /** Documents of an index, by id (empty when the index does not exist). */
  documents(indexUid: string): Doc[] {
    return [...(this.indexes.get(indexUid)?.docs.values() ?? [])];
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://double');
    let body: unknown;
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };
    try {
      const raw = await new Promise<string>((resolve, reject) => {
        let data = '';
        req.setEncoding('utf8');
        req.on('data', (c) => (data += c));
        req.on('end', () => resolve(data));
        req.on('error', reject);
      });
      if (raw !== '') {
        if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
          fail(415, 'invalid_content_type', `The Content-Type \`${req.headers['content-type']}\` is invalid. Accepted values for the Content-Type header are: \`application/json\``);
        }
        try {
          body = JSON.parse(raw);
        } catch (err) {
          fail(400, 'malformed_payload', `The json payload provided is malformed. \`${(err as Error).message}\`.`);
        }
      }
      this.requests.push({ method: req.method!, path: url.pathname, query: Object.fromEntries(url.searchParams), body, authorization: req.headers.authorization });
      const [status, payload] = this.route(req.method!, url, body, req.headers.authorization);
      send(status, payload);
    } catch (err) {
      if (err instanceof HttpError) send(err.status, err.error);
      else send(500, meiliError('internal', String(err), 'internal'));
    }
  }

  private route(method: string, url: URL, body: unknown, authorization: string | undefined): [number, unknown] {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (method === 'GET' && parts.length === 1 && parts[0] === 'health') return [200, { status: 'available' }];
    if (method === 'POST' && parts.length === 1 && parts[0] === 'multi-search') {
      const rules = this.authorize(authorization, 'search', null, true);
      return [200, this.multiSearch(body, rules)];
    }
    if (parts[0] === 'tasks' && parts.length === 2 && method === 'GET') {
      this.authorize(authorization, 'tasks.get', null);
      const task = this.tasks.find((t) => t.uid === Number(parts[1]));
      if (!task) fail(404, 'task_not_found', `Task \`${parts[1]}\` not found.`);
      const { apply: _apply, ...view } = task;
      return [200, view];
    }
    if (parts[0] === 'indexes' && parts.length >= 3) {
      const uid = parts[1];
      const rest = parts.slice(2).join('/');
      if (rest === 'search' && method === 'POST') {
        const rules = this.authorize(authorization, 'search', uid, true);
        return [200, this.search(uid, body, rules)];
      }
      if (rest === 'settings' && method === 'GET') {
        this.authorize(authorization, 'settings.get', uid);
        return [200, this.requireIndex(uid).settings];
      }
      if (rest === 'settings' && method === 'PATCH') {
        this.authorize(authorization, 'settings.update', uid);
        return [202, this.updateSettings(uid, body)];
      }
      if (rest === 'documents' && method === 'POST') {
        this.authorize(authorization, 'documents.add', uid);
        return [202, this.addDocuments(uid, body, url.searchParams.get('primaryKey'))];
      }
      if (rest === 'documents/delete-batch' && method === 'POST') {
        this.authorize(authorization, 'documents.delete', uid);
        return [202, this.deleteBatch(uid, body)];
      }
      if (rest === 'documents' && method === 'DELETE') {
        this.authorize(authorization, 'documents.delete', uid);
        return [202, this.deleteAll(uid)];
      }
    }
    fail(404, 'not_found', `Route ${method} ${url.pathname} is not part of this double.`);
  }

  /**
   * Checks the bearer credential for `action` on `indexUid`.
   * @returns the tenant token's filter for that index (`undefined` for keys and tokens without one).
   */
  private authorize(authorization: string | undefined, action: string, indexUid: string | null, tenantAllowed = false): unknown {
    if (!authorization) fail(401, 'missing_authorization_header', 'The Authorization header is missing. It must use the bearer authorization method.', 'auth');
    const credential = authorization.replace(/^Bearer /, '');
    if (credential === this.masterKey) return undefined;
    const key = this.keys.find((k) => k.key === credential);
    if (key) {
      if (!this.keyAllows(key, action, indexUid)) fail(403, 'invalid_api_key', 'The provided API key is invalid.', 'auth');
      return undefined;
    }
    if (!tenantAllowed || credential.split('.').length !== 3) fail(403, 'invalid_api_key', 'The provided API key is invalid.', 'auth');
    return this.verifyTenantToken(credential, indexUid);
  }

  private keyAllows(key: DoubleApiKey, action: string, indexUid: string | null): boolean {
    const actionOk = key.actions.includes('*') || key.actions.includes(action) || key.actions.includes(`${action.split('.')[0]}.*`);
    const indexOk = indexUid === null || key.indexes.includes('*') || key.indexes.includes(indexUid);
    return actionOk && indexOk;
  }

  /** Verifies a tenant token and @returns its search-rule filter for `indexUid` (null: unrestricted). */
  private verifyTenantToken(token: string, indexUid: string | null): unknown {
    const invalid = (): never => fail(403, 'invalid_api_key', 'The provided API key is invalid.', 'auth');
    const [h, p, s] = token.split('.');
    const header = b64urlJson(h);
    const payload = b64urlJson(p);
    if (!header || !payload || !['HS256', 'HS384', 'HS512'].includes(header.alg)) return invalid();
    const key = this.keys.find((k) => k.uid === payload.apiKeyUid);
    if (!key || !this.keyAllows(key, 'search', indexUid)) return invalid();
    const expected = crypto.createHmac(`sha${header.alg.slice(2)}`, key.key).update(`${h}.${p}`).digest();
    const given = Buffer.from(s, 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return invalid();
    if (typeof payload.exp === 'number' && payload.exp * 1000 < Date.now()) return invalid();
    if (indexUid === null) return payload.searchRules;
    return this.ruleFor(payload.searchRules, indexUid) ?? invalid();
  }

  /** The rule of `searchRules` for an index: its `{filter}` object, `{}` when allowed unfiltered, or null. */
  private ruleFor(searchRules: unknown, indexUid: string): { filter?: unknown } | null {
    const matches = (pattern: string) => pattern === '*' || pattern === indexUid || (pattern.endsWith('*') && indexUid.startsWith(pattern.slice(0, -1)));
    if (Array.isArray(searchRules)) return searchRules.some(matches) ? {} : null;
    if (!searchRules || typeof searchRules !== 'object') return null;
    const rules = searchRules as Record<string, { filter?: unknown } | null>;
    if (indexUid in rules) return rules[indexUid] ?? {};
    const pattern = Object.keys(rules).find(matches);
    return pattern === undefined ? null : (rules[pattern] ?? {});
  }

  private requireIndex(uid: string): IndexState {
    const index = this.indexes.get(uid);
    if (!index) fail(404, 'index_not_found', `Index \`${uid}\` not found.`);
    return index;
  }

  private getOrCreate(uid: string): IndexState {
    let index = this.indexes.get(uid);
    if (!index) {
      index = { uid, primaryKey: null, docs: new Map(), settings: defaultSettings(), createdAt: new Date().toISOString() };
      this.indexes.set(uid, index);
    }
    return index;
  }

  // ---- tasks

  private enqueue(indexUid: string | null, type: string, details: Record<string, unknown>, apply: Task['apply']) {
    const task: Task = {
      uid: this.tasks.length,
      batchUid: null,
      indexUid,
      status: 'enqueued',
      type,
      canceledBy: null,
      details,
      error: null,
      duration: null,
      enqueuedAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      apply,
    };
    this.tasks.push(task);
    this.queue.push(task);
    setImmediate(() => this.process());
    return { taskUid: task.uid, indexUid, status: 'enqueued', type, enqueuedAt: task.enqueuedAt };
  }

  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      for (let task = this.queue.shift(); task; task = this.queue.shift()) {
        task.status = 'processing';
        task.batchUid = task.uid;
        task.startedAt = new Date().toISOString();
        const started = performance.now();
        try {
          if (this.failing > 0) {
            this.failing--;
            throw new HttpError(500, meiliError('no_space_left_on_device', 'There is no more space left on the device. Consider increasing the size of the disk/partition.', 'system'));
          }
          Object.assign(task.details, task.apply() ?? {});
          task.status = 'succeeded';
        } catch (err) {
          task.status = 'failed';
          task.error = err instanceof HttpError ? err.error : meiliError('internal', String(err), 'internal');
        }
        task.finishedAt = new Date().toISOString();
        task.duration = `PT${((performance.now() - started) / 1000).toFixed(6)}S`;
      }
    } finally {
      this.processing = false;
    }
  }

  // ---- writes

  private updateSettings(uid: string, body: unknown) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) fail(400, 'bad_request', 'Invalid value type: expected an object');
    for (const field of Object.keys(body)) {
      if (!SETTINGS_FIELDS.includes(field)) fail(400, 'bad_request', `Unknown field \`${field}\`: expected one of ${SETTINGS_FIELDS.map((f) => `\`${f}\``).join(', ')}`);
    }
    const settings = body as Record<string, unknown>;
    return this.enqueue(uid, 'settingsUpdate', { ...settings }, () => {
      const index = this.getOrCreate(uid);
      for (const [k, v] of Object.entries(settings)) index.settings[k] = v === null ? defaultSettings()[k] : v;
    });
  }

  private addDocuments(uid: string, body: unknown, primaryKeyParam: string | null) {
    const docs = Array.isArray(body) ? body : body && typeof body === 'object' ? [body] : fail(400, 'malformed_payload', 'The json payload provided is malformed. `expected an array or an object`.');
    return this.enqueue(uid, 'documentAdditionOrUpdate', { receivedDocuments: docs.length, indexedDocuments: null }, () => {
      const index = this.getOrCreate(uid);
      if (!index.primaryKey) {
        if (primaryKeyParam) index.primaryKey = primaryKeyParam;
        else {
          const candidates = Object.keys(docs[0] ?? {}).filter((k) => k.toLowerCase().endsWith('id'));
          if (candidates.length === 0) fail(400, 'index_primary_key_no_candidate_found', 'The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.');
          if (candidates.length > 1) fail(400, 'index_primary_key_multiple_candidates_found', `The primary key inference failed as the engine found ${candidates.length} fields ending with \`id\` in their names: '${candidates.join("' and '")}'. Please specify the primary key manually using the \`primaryKey\` query parameter.`);
          index.primaryKey = candidates[0];
        }
      }
      const pk = index.primaryKey;
      for (const doc of docs as Doc[]) {
        const id = doc[pk];
        if (id === undefined) fail(400, 'missing_document_id', `Document doesn't have a \`${pk}\` attribute: \`${JSON.stringify(doc)}\`.`);
        if (!(typeof id === 'number' && Number.isInteger(id)) && !(typeof id === 'string' && /^[A-Za-z0-9_-]{1,511}$/.test(id))) {
          fail(400, 'invalid_document_id', `Document identifier \`${JSON.stringify(id)}\` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.`);
        }
      }
      for (const doc of docs as Doc[]) index.docs.set(String(doc[pk]), doc);
      return { indexedDocuments: docs.length };
    });
  }

  private deleteBatch(uid: string, body: unknown) {
    if (!Array.isArray(body)) fail(400, 'bad_request', 'Invalid value type: expected an array');
    const ids = body.map(String);
    return this.enqueue(uid, 'documentDeletion', { providedIds: ids.length, deletedDocuments: null, originalFilter: null }, () => {
      const index = this.requireIndex(uid);
      let deleted = 0;
      for (const id of ids) if (index.docs.delete(id)) deleted++;
      return { deletedDocuments: deleted };
    });
  }

  private deleteAll(uid: string) {
    return this.enqueue(uid, 'documentDeletion', { providedIds: 0, deletedDocuments: null, originalFilter: null }, () => {
      const index = this.requireIndex(uid);
      const deleted = index.docs.size;
      index.docs.clear();
      return { deletedDocuments: deleted };
    });
  }

  // ---- search

  private multiSearch(body: any, searchRules: unknown) {
    if (!body || !Array.isArray(body.queries)) fail(400, 'bad_request', 'Missing field `queries`');
    return {
      results: body.queries.map((query: any, n: number) => {
        if (typeof query?.indexUid !== 'string') fail(400, 'missing_index_uid', `Inside \`.queries[${n}]\`: Missing field \`indexUid\``);
        const { indexUid, ...params } = query;
        let rule: unknown;
        if (searchRules !== undefined) {
          const r = this.ruleFor(searchRules, indexUid);
          if (r === null) fail(403, 'invalid_api_key', `Inside \`.queries[${n}]\`: The provided API key is invalid.`, 'auth');
          rule = r.filter;
        }
        return { indexUid, ...this.search(indexUid, params, rule === undefined ? undefined : { filter: rule }) };
      }),
    };
  }

  private search(uid: string, body: any, rule: unknown) {
    const params = body ?? {};
    for (const field of Object.keys(params)) {
      if (!SEARCH_PARAMS.includes(field)) fail(400, 'bad_request', `Unknown field \`${field}\`: expected one of ${SEARCH_PARAMS.map((f) => `\`${f}\``).join(', ')}`);
    }
    const index = this.requireIndex(uid);
    const s = index.settings as { filterableAttributes: string[]; sortableAttributes: string[]; searchableAttributes: string[]; rankingRules: string[]; pagination: { maxTotalHits: number } };
    const used = new Set<string>();
    const ruleFilter = (rule as { filter?: unknown } | undefined)?.filter;
    const predicates = [compileFilter(params.filter, used), compileFilter(ruleFilter, used)];
    for (const attribute of used) {
      if (!s.filterableAttributes.includes(attribute)) {
        fail(400, 'invalid_search_filter', `Attribute \`${attribute}\` is not filterable. Available filterable attributes are: \`${s.filterableAttributes.join(', ')}\`.`);
      }
    }
    const sort: { attribute: string; desc: boolean }[] = (params.sort ?? []).map((spec: string) => {
      const [attribute, direction] = spec.split(':');
      if (!['asc', 'desc'].includes(direction)) fail(400, 'invalid_search_sort', `Invalid syntax for the sort parameter: expected expression ending by \`:asc\` or \`:desc\`, found \`${spec}\`.`);
      if (!s.sortableAttributes.includes(attribute)) {
        fail(400, 'invalid_search_sort', `Attribute \`${attribute}\` is not sortable. Available sortable attributes are: \`${s.sortableAttributes.join(', ')}\`.`);
      }
      return { attribute, desc: direction === 'desc' };
    });
    const q: string = params.q ?? '';
    const terms = parseQuery(q);
    const strategy = params.matchingStrategy ?? 'last';
    const scored: { doc: Doc; order: number; matched: number; score: number }[] = [];
    [...index.docs.values()].forEach((doc, order) => {
      if (!predicates.every((p) => p(doc))) return;
      if (terms.length === 0) return scored.push({ doc, order, matched: 0, score: 1 });
      const tokens = words(searchableText(doc, s.searchableAttributes));
      const hits = terms.map((t) => termMatches(t, tokens).length);
      let matched = hits.findIndex((n) => n === 0);
      if (matched === -1) matched = terms.length;
      if (strategy === 'all' ? matched < terms.length : matched === 0) return;
      const density = hits.slice(0, matched).reduce((a, b) => a + b, 0) / Math.max(tokens.length, 1);
      scored.push({ doc, order, matched, score: (matched / terms.length) * (0.5 + 0.5 * Math.min(1, density)) });
    });
    const bySort = (a: Doc, b: Doc) => {
      for (const { attribute, desc } of sort) {
        const x = a[attribute] as number;
        const y = b[attribute] as number;
        if (x !== y) return (x < y ? -1 : 1) * (desc ? -1 : 1);
      }
      return 0;
    };
    const sortFirst = s.rankingRules.indexOf('sort') < s.rankingRules.indexOf('words');
    scored.sort((a, b) => {
      const bySortResult = bySort(a.doc, b.doc);
      if (sortFirst && bySortResult) return bySortResult;
      if (a.matched !== b.matched) return b.matched - a.matched;
      if (a.score !== b.score) return b.score - a.score;
      return bySortResult || a.order - b.order;
    });
    const total = Math.min(scored.length, s.pagination.maxTotalHits);
    const offset: number = params.offset ?? 0;
    const limit: number = params.limit ?? 20;
    const page = scored.slice(0, total).slice(offset, offset + limit);
    const retrieve: string[] = params.attributesToRetrieve ?? ['*'];
    const toHighlight: string[] = params.attributesToHighlight ?? [];
    const toCrop: string[] = (params.attributesToCrop ?? []).map((a: string) => a.split(':')[0]);
    const pick = (doc: Doc, attributes: string[]) => (attributes.includes('*') ? { ...doc } : Object.fromEntries(attributes.filter((a) => a in doc).map((a) => [a, doc[a]])));
    return {
      hits: page.map(({ doc, score }) => {
        const hit: Doc = pick(doc, retrieve);
        if (toHighlight.length || toCrop.length) {
          const formatted = pick(doc, [...retrieve, ...toHighlight, ...toCrop]);
          for (const [k, v] of Object.entries(formatted)) {
            let text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : v;
            if (typeof text === 'string' && (toCrop.includes(k) || toCrop.includes('*'))) text = crop(text, terms, params.cropLength ?? 10, params.cropMarker ?? '…');
            if (typeof text === 'string' && (toHighlight.includes(k) || toHighlight.includes('*'))) text = highlight(text, terms, params.highlightPreTag ?? '<em>', params.highlightPostTag ?? '</em>');
            formatted[k] = text;
          }
          hit._formatted = formatted;
        }
        if (params.showRankingScore) hit._rankingScore = score;
        return hit;
      }),
      query: q,
      processingTimeMs: 0,
      limit,
      offset,
      estimatedTotalHits: total,
    };
  }
}
