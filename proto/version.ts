// The wire protocol version. Every message carries it as `v`; a peer speaking another version is refused
// with ProtocolVersionError rather than misread. Bump it whenever a schema changes incompatibly.
export const PROTOCOL_VERSION = 1;
