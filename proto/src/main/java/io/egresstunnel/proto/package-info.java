/**
 * The tunnel wire protocol: typed {@link io.egresstunnel.proto.Frame}s, their byte codec ({@link
 * io.egresstunnel.proto.FrameCodec}) and the Netty handlers that carry them in binary websocket
 * messages. docs/protocol.md is the specification.
 */
package io.egresstunnel.proto;
