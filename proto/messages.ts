// TypeScript shapes of proto/umbrella.proto as protobufjs decodes them
// (camelCase fields, enums as numbers, int64 as number). Optional fields are
// absent when they hold proto3 defaults.

export const PROTOCOL_VERSION = 1;

export enum PeerKind {
  Unspecified = 0,
  Browser = 1,
  Node = 2,
  Client = 3,
}

export enum Leg {
  Unspecified = 0,
  Send = 1,
  Receive = 2,
}

export enum MediaKind {
  Unspecified = 0,
  Audio = 1,
  Video = 2,
}

export enum TrackSource {
  Unspecified = 0,
  Participant = 1,
  Camera = 2,
}

export enum NoticeLevel {
  Unspecified = 0,
  Info = 1,
  Warning = 2,
  Error = 3,
}

export interface Hello {
  protocolVersion?: number;
  kind?: PeerKind;
  nodeId?: string;
  name?: string;
  site?: string;
  software?: string;
  assignedPeerId?: string;
}

export interface TrackInfo {
  id?: string;
  kind?: MediaKind;
  mimeType?: string;
  fmtp?: string;
  clockRate?: number;
  channels?: number;
  participantId?: string;
  participantName?: string;
  site?: string;
  originNodeId?: string;
  path?: string[];
  source?: TrackSource;
  label?: string;
  muted?: boolean;
  simulcast?: Simulcast;
}

export interface Simulcast {
  group?: string;
  layer?: number;
}

export interface LayerPreference {
  trackId?: string;
  maxLayer?: number;
}

export interface TrackBinding {
  mid?: string;
  track?: TrackInfo;
}

export interface Offer {
  sdp?: string;
  tracks?: TrackBinding[];
}

export interface Answer {
  sdp?: string;
}

export interface Candidate {
  leg?: Leg;
  candidate?: string;
  sdpMid?: string;
  sdpMlineIndex?: number;
}

export interface TrackAnnounce {
  tracks?: TrackInfo[];
}

export interface TrackIds {
  trackIds?: string[];
}

export interface KeyframeRequest {
  trackId?: string;
}

export interface Notice {
  level?: NoticeLevel;
  code?: string;
  text?: string;
  trackId?: string;
}

export interface Ping {
  nonce?: number;
}

export interface Bye {
  reason?: string;
}

/** Exactly one member is set. */
export interface Envelope {
  hello?: Hello;
  offer?: Offer;
  answer?: Answer;
  candidate?: Candidate;
  announce?: TrackAnnounce;
  withdraw?: TrackIds;
  subscribe?: TrackIds;
  unsubscribe?: TrackIds;
  keyframeRequest?: KeyframeRequest;
  notice?: Notice;
  ping?: Ping;
  pong?: Ping;
  bye?: Bye;
  layerPreference?: LayerPreference;
}

export type EnvelopeKind = keyof Envelope;
