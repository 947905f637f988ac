/**
 * Remote -> hub: the handlers of the `RemoteEvent`s a connector produced, one at a time per remote
 * chat (the queue's lanes). Each is posted to the hub as the sender's ghost (created or updated on
 * the way), in the chat's portal room (created on first use), with the original time and the remote
 * id, so a repeat after a crash is answered with the first message. Also the bridge's identity on
 * the hub (its bot and its ghosts) and the notices its bot posts.
 */
import type { Logger } from 'pino';
import type { BridgeE2ee, OutEnvelope } from './e2ee.js';
import { HubClient, HubError } from './hub-client.js';
import type { BridgeState } from './state.js';
import { RemoteError, type Capabilities, type Connector, type MediaFile, type RemoteEvent, type RemoteMedia, type RemotePortal, type RemoteUser } from './types.js';

/** Who the bridge is on the hub (`GET /api/bridge/whoami`). */
export interface HubIdentity {
  botId: string;
  /** Localpart prefix of its ghosts. */
  namespace: string;
}

type Remote<T extends RemoteEvent['type']> = Extract<RemoteEvent, { type: T }>;

export class RemoteToHub {
  private readonly ghostIds = new Set<string>();
  /** Fetches a remote file; without the media capability, a permanent failure (the file is named in the text). */
  private readonly download: (media: RemoteMedia) => Promise<MediaFile>;
  /** The connector's portal members (none when it has no such setting). */
  private readonly portalMembers: () => string[];

  constructor(
    private readonly hub: HubClient,
    private readonly state: BridgeState,
    private readonly connector: Connector,
    capabilities: Capabilities,
    private readonly identity: HubIdentity,
    /** The bot's E2EE device (`e2ee = true`): what goes into encrypted portal rooms is encrypted with it. */
    private readonly e2ee: BridgeE2ee | undefined,
    private readonly log: Logger,
  ) {
    for (const g of state.ghosts.values()) this.ghostIds.add(g.hubId);
    const { media } = capabilities;
    this.download = media
      ? (m) => media.downloadMedia(m)
      : async () => {
          throw new RemoteError(`the ${connector.network} connector cannot fetch files`, false);
        };
    this.portalMembers = connector.portalMembers?.bind(connector) ?? (() => []);
  }

  /** True for the bridge's own users (its bot and its ghosts): what they write never goes back out. */
  isOurs(userId: string | undefined): boolean {
    return userId === this.identity.botId || (userId !== undefined && this.ghostIds.has(userId));
  }

  /** Handles one remote event. @throws HubError, RemoteError (the queue retries the transient ones). */
  async handle(ev: RemoteEvent): Promise<void> {
    switch (ev.type) {
      case 'message':
        return this.message(ev);
      case 'notice':
        return this.notice(ev);
      case 'edit':
        return this.edit(ev);
      case 'delete':
        return this.delete(ev);
      case 'reaction':
        return this.reaction(ev);
      case 'unreaction':
        return this.unreaction(ev);
      case 'receipt':
        return this.receipt(ev);
      case 'join':
        await this.ensurePortal(ev.portal, await this.ensureGhost(ev.sender));
        return;
      default: {
        const unknown: never = ev;
        this.log.warn({ event: unknown }, 'remote event of an unknown type ignored');
      }
    }
  }

  /** Posts a notice as the bridge bot; `txnId`/`remoteId` make a repeat after a crash harmless. */
  async postNotice(roomId: string, text: string, replyTo?: string, txnId?: string, remoteId?: string): Promise<void> {
    const extra = { ...(replyTo ? { reply_to: replyTo } : {}), ...(txnId ? { txn_id: txnId } : {}), ...(remoteId ? { remote_id: remoteId } : {}) };
    await this.sealed(roomId, undefined, text, (sealed) => this.hub.call('POST', `/api/rooms/${roomId}/messages`, { body: { ...sealed, ...extra } }));
  }

  /**
   * Writes `text` into room `roomId` as `as` (a ghost; the bot when undefined) through `call`: as
   * `{content}`, or in an encrypted room as `{envelopes}` for every member device (E2EE bridges). A
   * room found encrypted (400 PLAINTEXT_IN_ENCRYPTED_ROOM, or a `room.updated` in a transaction) is
   * remembered; a bridge without e2ee drops what the network sends there (logged).
   * @returns what `call` returned; undefined when dropped.
   */
  private async sealed<T>(roomId: string, as: string | undefined, text: string, call: (sealed: { content: string } | { envelopes: OutEnvelope[] }) => Promise<T>): Promise<T | undefined> {
    const s = this.state;
    if (s.encryptedRooms.has(roomId)) {
      if (this.e2ee) return this.e2ee.send(roomId, as, text, (envelopes) => call({ envelopes }));
      this.log.warn({ room_id: roomId }, 'the portal room is encrypted and the bridge has no e2ee: not bridged');
      return undefined;
    }
    try {
      return await call({ content: text });
    } catch (err) {
      if (!(err instanceof HubError && err.code === 'PLAINTEXT_IN_ENCRYPTED_ROOM')) throw err;
      await s.write([s.encryptedRooms.put(roomId, Date.now())]);
      return this.sealed(roomId, as, text, call);
    }
  }

  /**
   * Posts a remote message as its sender's ghost: a reply answers the bridged message, a thread
   * reply the thread's first message; files are re-uploaded (one that fails for good is named in the
   * text instead).
   */
  private async message(ev: Remote<'message'>): Promise<void> {
    const s = this.state;
    // Bridged already (a repeat, or the echo of the bridge's own send) or deleted before it arrived.
    if (s.remoteMessages.has(ev.id) || s.deletedBeforeArrival.has(ev.id)) return;
    const ghost = await this.ensureGhost(ev.sender);
    const roomId = await this.ensurePortal(ev.portal, ghost);
    const root = ev.thread ? s.threads.get(ev.thread) : undefined;
    const answers = ev.replyTo ?? (ev.threadReply ? root : undefined);
    const replyTo = answers ? await this.hubIdOf(answers) : undefined;
    const attachments: string[] = [];
    const notes: string[] = [];
    const encrypted = s.encryptedRooms.has(roomId);
    for (const media of ev.media ?? []) {
      if (encrypted) {
        notes.push(`📎 ${media.fileName ?? 'file'} (not bridged: files are not bridged into encrypted rooms)`);
        continue;
      }
      try {
        attachments.push(await this.hub.upload(ghost, await this.download(media)));
      } catch (err) {
        if ((err instanceof HubError || err instanceof RemoteError) && !err.transient) notes.push(`📎 ${media.fileName ?? 'file'} (not bridged: ${err.message})`);
        else throw err;
      }
    }
    const content = [ev.text, ...notes].filter(Boolean).join('\n') || (attachments.length ? '' : '(empty message)');
    const extra = { ts: ev.ts, remote_id: ev.id, ...(replyTo ? { reply_to: replyTo } : {}), ...(attachments.length ? { attachments } : {}) };
    const sent = await this.sealed(roomId, ghost, content, (sealed) => this.hub.call<{ id: string }>('POST', `/api/rooms/${roomId}/messages`, { as: ghost, body: { ...sealed, ...extra } }));
    if (!sent) return;
    await s.write([
      s.remoteMessages.put(ev.id, { hubId: sent.id, roomId, dir: 'in', thread: ev.thread }),
      s.hubMessages.put(sent.id, { remoteId: ev.id, parts: [ev.id], portal: ev.portal.id, dir: 'in', thread: ev.thread }),
      s.lastInbound.put(ev.portal.id, ev.id),
      ...(ev.thread && !root ? [s.threads.put(ev.thread, ev.id)] : []),
    ]);
  }

  private async notice(ev: Remote<'notice'>): Promise<void> {
    const roomId = await this.ensurePortal(ev.portal);
    const replyTo = ev.targetId ? await this.hubIdOf(ev.targetId) : undefined;
    await this.postNotice(roomId, ev.text, replyTo, undefined, ev.id);
  }

  private async edit(ev: Remote<'edit'>): Promise<void> {
    // Only the bridge's own identity can edit what the bridge sent: an echo.
    if (this.state.remoteMessages.get(ev.targetId)?.dir === 'out') return;
    const target = await this.hubIdOf(ev.targetId);
    if (!target) return this.unknownTarget(ev, ev.targetId);
    const ghost = await this.ensureGhost(ev.sender);
    const roomId = await this.ensurePortal(ev.portal, ghost);
    await this.sealed(roomId, ghost, ev.text, (sealed) => this.hub.call('PATCH', `/api/messages/${target}`, { as: ghost, body: sealed }));
  }

  private async delete(ev: Remote<'delete'>): Promise<void> {
    const target = await this.hubIdOf(ev.targetId);
    // Deleted before it arrived (networks do not always keep order): never post it.
    if (!target) return this.state.write([this.state.deletedBeforeArrival.put(ev.targetId, Date.now())]);
    // As the bot, the portal's owner: a remote moderator may delete other people's messages.
    await this.hub.call('DELETE', `/api/messages/${target}`);
  }

  /** A remote person's reaction becomes the ghost's; a new emoji under a known reaction id replaces the old one. */
  private async reaction(ev: Remote<'reaction'>): Promise<void> {
    const s = this.state;
    if (s.ownReactions.has(ev.reactionId)) return;
    const target = await this.hubIdOf(ev.targetId);
    if (!target) return this.unknownTarget(ev, ev.targetId);
    const ghost = await this.ensureGhost(ev.sender);
    await this.ensurePortal(ev.portal, ghost);
    const previous = s.remoteReactions.get(ev.reactionId);
    if (previous && previous.emoji !== ev.emoji) await this.unreact(previous);
    await this.hub.call('PUT', `/api/messages/${target}/reactions/${encodeURIComponent(ev.emoji)}`, { as: ghost });
    await s.write([s.remoteReactions.put(ev.reactionId, { hubId: target, ghost, emoji: ev.emoji })]);
  }

  private async unreaction(ev: Remote<'unreaction'>): Promise<void> {
    const previous = this.state.remoteReactions.get(ev.reactionId);
    if (!previous) return;
    await this.unreact(previous);
    await this.state.write([this.state.remoteReactions.del(ev.reactionId)]);
  }

  private async receipt(ev: Remote<'receipt'>): Promise<void> {
    const target = await this.hubIdOf(ev.targetId);
    if (!target) return this.unknownTarget(ev, ev.targetId);
    const ghost = await this.ensureGhost(ev.sender);
    const roomId = await this.ensurePortal(ev.portal, ghost);
    if (ev.receipt === 'read') await this.hub.call('POST', `/api/rooms/${roomId}/read`, { as: ghost, body: { message_id: target } });
    else await this.hub.call('POST', `/api/bridge/messages/${target}/delivered`, { as: ghost });
  }

  private async unreact(r: { hubId: string; ghost: string; emoji: string }): Promise<void> {
    await this.hub.call('DELETE', `/api/messages/${r.hubId}/reactions/${encodeURIComponent(r.emoji)}`, { as: r.ghost });
  }

  private unknownTarget(ev: RemoteEvent, target: string): void {
    this.log.info({ id: ev.id, target }, `${ev.type} for a message the bridge does not know; ignored`);
  }

  /** The hub id of a remote message: from the mapping, else from the hub (what the bridge posted). */
  private async hubIdOf(remoteId: string): Promise<string | undefined> {
    const known = this.state.remoteMessages.get(remoteId);
    if (known) return known.hubId;
    try {
      return (await this.hub.call<{ id: string }>('GET', `/api/bridge/messages/by-remote-id/${encodeURIComponent(remoteId)}`)).id;
    } catch (err) {
      if (err instanceof HubError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * The ghost of a remote user, created or updated (name, avatar) on the hub when needed; a user
   * without a name keeps the one it has, or is "<network> user <id>". @returns its hub id.
   */
  private async ensureGhost(user: RemoteUser): Promise<string> {
    const known = this.state.ghosts.get(user.id);
    if (known && (!user.name || known.name === user.name) && (!user.avatarUrl || known.avatarUrl === user.avatarUrl)) return known.hubId;
    const localpart = this.identity.namespace + user.id.toLowerCase().replace(/[^a-z0-9_.=-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
    const name = (user.name || known?.name || `${this.connector.displayName} user ${user.id}`).slice(0, 100);
    const avatarUrl = user.avatarUrl ?? known?.avatarUrl;
    const ghost = await this.hub.call<{ id: string }>('POST', '/api/bridge/ghosts', { body: { localpart, name, ...(avatarUrl ? { avatar_url: avatarUrl } : {}) } });
    await this.state.write([this.state.ghosts.put(user.id, { hubId: ghost.id, name, avatarUrl })]);
    this.ghostIds.add(ghost.id);
    return ghost.id;
  }

  /**
   * The portal room of a remote chat, created on first use, with `ghost` and the connector's portal
   * members (also those configured later) as members. @returns the room id.
   */
  private async ensurePortal(portal: RemotePortal, ghost?: string): Promise<string> {
    const s = this.state;
    const known = s.portals.get(portal.id);
    const wanted = [...(ghost ? [ghost] : []), ...this.portalMembers()];
    if (known && wanted.every((id) => known.members.includes(id))) return known.roomId;
    const members = [...new Set([...(known?.members ?? []), ...wanted])];
    const res = await this.hub.call<{ room_id: string }>('POST', '/api/bridge/portals', { body: { remote_id: portal.id, name: portal.name.slice(0, 200), members } });
    await s.write([s.portals.put(portal.id, { roomId: res.room_id, members }), s.portalOfRoom.put(res.room_id, portal.id)]);
    return res.room_id;
  }
}
