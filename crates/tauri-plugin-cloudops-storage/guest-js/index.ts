// The cloudops-storage commands for the page. Every type comes from ./bindings (generated from
// the Rust types); these functions only name the command and its arguments. A failed command
// rejects with an `ErrorPayload` (`{ kind, message }`); use `isStorageError` to narrow it.

import { Channel, invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'

import type {
  AWSResource,
  BackupStatus,
  ContextOptions,
  Conversation,
  ConversationPage,
  ConversationStatus,
  DeleteReceipt,
  ErrorKind,
  ErrorPayload,
  Health,
  HistoryRange,
  ImportOptions,
  ImportReport,
  JsonValue,
  KeyStatus,
  Manifest,
  Message,
  NewMessage,
  NodeImportReport,
  Progress,
  PromptContext,
  ResourceFilter,
  ResourceHit,
  RestoreOptions,
  RestoreReport,
  SearchOptions,
  SearchResults,
  StorageEvent,
  SyncReport,
  SyncScope,
  UpsertReport
} from './bindings'

export type * from './bindings'

/** The name of the event carrying `StorageEvent`s. */
export const EVENT = 'cloudops-storage://event'

/** A resource as the page may send it: the identifying fields, the rest defaulted by Rust. */
export type ResourceInput = Partial<AWSResource> &
  Pick<AWSResource, 'resource_type' | 'identifier' | 'account_id' | 'region' | 'service'>

/** Called with each progress report of a long command. */
export type OnProgress = (progress: Progress) => void

function call<T>(command: string, args: Record<string, unknown> = {}): Promise<T> {
  return invoke<T>(`plugin:cloudops-storage|${command}`, args)
}

function progressChannel(onProgress?: OnProgress): Channel<Progress> {
  const channel = new Channel<Progress>()
  if (onProgress) channel.onmessage = onProgress
  return channel
}

/** Whether `e` is the rejection of a cloudops-storage command (optionally of one kind). */
export function isStorageError(e: unknown, kind?: ErrorKind): e is ErrorPayload {
  if (typeof e !== 'object' || e === null) return false
  const payload = e as Partial<ErrorPayload>
  return typeof payload.kind === 'string' && typeof payload.message === 'string' && (kind === undefined || payload.kind === kind)
}

/** Listen to background state (backup finished or failed, embeddings pending). */
export function onStorageEvent(handler: (event: StorageEvent) => void): Promise<UnlistenFn> {
  return listen<StorageEvent>(EVENT, (e) => handler(e.payload))
}

// --- chat ---------------------------------------------------------------------------------

export function createConversation(userId: string, title: string, metadata?: JsonValue): Promise<Conversation> {
  return call('create_conversation', { userId, title, metadata })
}

export function append(contextId: string, message: NewMessage): Promise<Message> {
  return call('append', { contextId, message })
}

export function getHistory(contextId: string, range?: HistoryRange): Promise<Message[]> {
  return call('get_history', { contextId, range })
}

export function listConversations(
  userId: string,
  options: { status?: ConversationStatus; limit?: number; cursor?: string } = {}
): Promise<ConversationPage> {
  return call('list_conversations', { userId, ...options })
}

export function rename(contextId: string, title: string): Promise<Conversation> {
  return call('rename', { contextId, title })
}

export function archive(contextId: string, archived = true): Promise<Conversation> {
  return call('archive', { contextId, archived })
}

export function deleteConversation(contextId: string): Promise<DeleteReceipt> {
  return call('delete_conversation', { contextId })
}

/** Needs the `cloudops-storage:allow-erase-user` permission. */
export function eraseUser(userId: string): Promise<DeleteReceipt> {
  return call('erase_user', { userId })
}

export function searchConversations(
  userId: string,
  query: string,
  options?: Partial<SearchOptions>
): Promise<SearchResults> {
  return call('search_conversations', { userId, query, options })
}

export function contextForPrompt(
  userId: string,
  currentContextId: string,
  prompt: string,
  options?: Partial<ContextOptions>
): Promise<PromptContext> {
  return call('context_for_prompt', { userId, currentContextId, prompt, options })
}

export function importNode(chatDataDir: string, user?: string, onProgress?: OnProgress): Promise<NodeImportReport> {
  return call('import_node', { chatDataDir, user, onProgress: progressChannel(onProgress) })
}

// --- estate -------------------------------------------------------------------------------

export function importFiles(paths: string[], options?: Partial<ImportOptions>, onProgress?: OnProgress): Promise<ImportReport> {
  return call('import_files', { paths, options, onProgress: progressChannel(onProgress) })
}

export function upsertResources(resources: ResourceInput[]): Promise<UpsertReport> {
  return call('upsert_resources', { resources })
}

export function searchEstate(query: string, filter?: Partial<ResourceFilter>, limit?: number): Promise<ResourceHit[]> {
  return call('search', { query, filter, limit })
}

export function getResource(keyOrArn: string): Promise<AWSResource> {
  return call('get', { keyOrArn })
}

/** Counts per `by` (`service`, `region`, `resource_type`, `account`, `state` or `tag:KEY`). */
export function estateStats(by?: string, filter?: Partial<ResourceFilter>): Promise<Array<[string, number]>> {
  return call('stats', { by, filter })
}

/** Needs the `cloudops-storage:allow-sync` permission (in the `estate-write` set). */
export function sync(scope: SyncScope, resources: ResourceInput[], onProgress?: OnProgress): Promise<SyncReport> {
  return call('sync', { scope, resources, onProgress: progressChannel(onProgress) })
}

// --- backups ------------------------------------------------------------------------------

export function backupNow(upload = false, onProgress?: OnProgress): Promise<Manifest> {
  return call('backup_now', { upload, onProgress: progressChannel(onProgress) })
}

export function listBackups(remote = false): Promise<Manifest[]> {
  return call('list_backups', { remote })
}

export function verifyBackup(name?: string): Promise<Manifest> {
  return call('verify_backup', { name })
}

export function backupStatus(): Promise<BackupStatus> {
  return call('backup_status')
}

/** Needs the `cloudops-storage:allow-restore-backup` permission (in the `backup` set). */
export function restoreBackup(options?: Partial<RestoreOptions>, onProgress?: OnProgress): Promise<RestoreReport> {
  return call('restore_backup', { options, onProgress: progressChannel(onProgress) })
}

// --- keys and health ----------------------------------------------------------------------

export function keyStatus(): Promise<KeyStatus> {
  return call('key_status')
}

/** Needs the `cloudops-storage:allow-rotate-key` permission. */
/** Re-wrap the data keys under a new key from the source the app configures; `newEpoch`
 * after a leak: a new data key seals everything written from now on. */
export function rotateKey(newEpoch?: boolean): Promise<KeyStatus> {
  return call('rotate_key', { newEpoch })
}

export function health(): Promise<Health> {
  return call('health')
}
