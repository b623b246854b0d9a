package io.egresstunnel.proto;

import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToMessageEncoder;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import java.util.List;

/** Writes each {@link Frame} as one binary websocket message; DATA payloads are not copied. */
@Sharable
public final class FrameEncoder extends MessageToMessageEncoder<Frame> {
  public FrameEncoder() {
    super(Frame.class);
  }

  @Override
  protected void encode(ChannelHandlerContext ctx, Frame frame, List<Object> out) {
    out.add(new BinaryWebSocketFrame(FrameCodec.encode(ctx.alloc(), frame)));
  }
}
