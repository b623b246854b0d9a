package io.egresstunnel.proto;

import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToMessageDecoder;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.util.List;

/**
 * Turns each binary websocket message into one {@link Frame}. Text and fragmented messages are
 * session errors; ping, pong and close frames pass through untouched for the websocket handler.
 * Errors are raised as {@link ProtocolException} through {@code exceptionCaught}, in order with the
 * frames.
 */
public final class FrameDecoder extends MessageToMessageDecoder<WebSocketFrame> {
  private final int maxFramePayload;

  /**
   * @param maxFramePayload the largest frame body this side declared it accepts
   */
  public FrameDecoder(int maxFramePayload) {
    super(WebSocketFrame.class);
    this.maxFramePayload = Limits.checkMaxFramePayload("max frame payload", maxFramePayload);
  }

  @Override
  public boolean acceptInboundMessage(Object msg) {
    return msg instanceof BinaryWebSocketFrame
        || msg instanceof TextWebSocketFrame
        || msg instanceof ContinuationWebSocketFrame;
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, WebSocketFrame msg, List<Object> out) {
    if (!(msg instanceof BinaryWebSocketFrame)) {
      throw ProtocolException.session(
          ProtocolError.INVALID_MESSAGE,
          (msg instanceof TextWebSocketFrame ? "text" : "continuation")
              + " websocket message; frames travel in unfragmented binary messages");
    }
    if (!msg.isFinalFragment()) {
      throw ProtocolException.session(
          ProtocolError.INVALID_MESSAGE,
          "fragmented websocket message; frames travel in unfragmented binary messages");
    }
    out.add(FrameCodec.decode(msg.content(), maxFramePayload));
  }
}
