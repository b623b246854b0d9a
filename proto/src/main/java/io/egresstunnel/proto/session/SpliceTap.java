package io.egresstunnel.proto.session;

import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.SplicePipe;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.net.WebSocketHeader;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.epoll.AbstractEpollStreamChannel;
import io.netty.handler.codec.http.websocketx.WebSocketFrameDecoder;
import java.io.IOException;

/**
 * Splices DATA payloads from a plaintext websocket on epoll straight into their streams' sockets
 * (docs/architecture.md, "Splicing"). It sits in front of the websocket decoder and watches the
 * frame boundaries in the bytes it passes on. When a read ends inside the payload of an unmasked
 * DATA frame whose stream can take it ({@link TunnelStream#canSplice}), the tap keeps that frame
 * from the decoder: the payload bytes the read brought go to the stream as bytes, and the rest
 * moves from the socket through the stream's pipe into the stream's socket by {@code splice(2)},
 * never entering the process. Every other byte reaches the decoder as it arrived, so the decoder
 * and the session check them as always; the tap only skips frames it has checked itself: final,
 * binary, unmasked, no extension bits, a DATA header that agrees with the websocket length.
 *
 * <p>To find the next header without reading into its payload, once a frame has been spliced the
 * tap ends every read at the next header ({@link Transport.LimitedReadAllocator}): one header, or
 * the rest of a frame it passes on and the header after it. Reads go back to their usual size after
 * {@value #SMALL_FRAMES_TO_STOP} small frames in a row and none spliced. If the stream's pipe fills
 * (its socket is slow), the rest of the frame is read into the process as usual: a slow stream
 * never holds the websocket up.
 */
public final class SpliceTap extends ChannelInboundHandlerAdapter {
  /** The most a websocket header (no mask) and a DATA header take: the size of a header read. */
  static final int MAX_HEADERS = 10 + Limits.HEADER_SIZE;

  /** This many small frames in a row, none spliced, and reads go back to their usual size. */
  static final int SMALL_FRAMES_TO_STOP = 8;

  /** A payload is spliced only if at least this much of it is still to arrive. */
  static final int MIN_SPLICE = 16 * 1024;

  private enum Mode {
    /** Between frames, or within the header of a frame that is passed on. */
    HEADER,
    /** Within the payload of a frame that is passed on to the decoder. */
    PASS,
    /** Within a payload taken from the decoder: the rest is spliced. */
    SPLICE,
    /** Within a payload taken from the decoder whose stream's pipe filled: the rest is read. */
    COPY
  }

  private final TunnelSession session;
  private ChannelHandlerContext ctx;
  private int socketFd;

  private Mode mode = Mode.HEADER;
  private long remaining; // payload bytes of the current frame still to come (PASS, SPLICE, COPY)
  private TunnelStream stream; // SPLICE and COPY
  private final byte[] header = new byte[14]; // a websocket header split across reads
  private final ByteBuf headerBytes = io.netty.buffer.Unpooled.wrappedBuffer(header);
  private int headerHave;
  private boolean splicing; // frames are being spliced: reads end at the next header
  private int smallInARow; // small frames passed on since the last spliced one

  private SpliceTap(TunnelSession session) {
    this.session = session;
  }

  /**
   * Puts a tap in front of the websocket decoder of {@code p} if splicing is enabled and the
   * websocket is a plaintext epoll socket; call it once the upgrade is done, before the first frame
   * arrives.
   */
  public static void installIfPossible(ChannelPipeline p, TunnelSession session) {
    Channel ch = p.channel();
    if (!Transport.splicing()
        || !(ch instanceof AbstractEpollStreamChannel)
        || p.get(SessionPipeline.TLS_HANDLER) != null) {
      return;
    }
    ChannelHandlerContext decoder = p.context(WebSocketFrameDecoder.class);
    if (decoder == null) {
      return;
    }
    p.addBefore(decoder.name(), "splice-tap", new SpliceTap(session));
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
    this.socketFd = SplicePipe.fd(ctx.channel());
    Transport.limitReads(ctx.channel(), this::nextReadLimit);
    // A spliced send waits in the outbound buffer as a region: count its bytes for writability.
    ctx.channel().config().setMessageSizeEstimator(SIZES);
    session.spliceTap(this);
  }

  /** Writes and flushes a whole websocket message from below the websocket encoder. */
  io.netty.channel.ChannelFuture write(io.netty.channel.FileRegion message) {
    return ctx.writeAndFlush(message);
  }

  private static final io.netty.channel.MessageSizeEstimator.Handle NETTY_SIZES =
      io.netty.channel.DefaultMessageSizeEstimator.DEFAULT.newHandle();

  /** Netty's sizes, except that a region counts its bytes (Netty counts a file region as 0). */
  private static final io.netty.channel.MessageSizeEstimator SIZES =
      () ->
          msg ->
              msg instanceof io.netty.channel.FileRegion r
                  ? (int) Math.min(Integer.MAX_VALUE, r.count())
                  : NETTY_SIZES.size(msg);

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    session.spliceTap(null);
    Transport.limitReads(ctx.channel(), null);
  }

  /** How many bytes the next read may take: one header after a spliced frame, else any. */
  int nextReadLimit() {
    return switch (mode) {
      case SPLICE -> 1; // the payload is spliced; a read only says that more has arrived
      case HEADER -> splicing ? MAX_HEADERS - headerHave : Integer.MAX_VALUE;
      // The rest of a frame passed on or read (its stream's pipe was full), and the next header.
      case PASS, COPY ->
          splicing
              ? (int) Math.min(remaining, Integer.MAX_VALUE - MAX_HEADERS) + MAX_HEADERS
              : Integer.MAX_VALUE;
    };
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof ByteBuf in)) {
      ctx.fireChannelRead(msg);
      return;
    }
    try {
      read(in);
    } catch (IOException e) {
      ctx.fireExceptionCaught(e);
      ctx.close();
    }
  }

  private void read(ByteBuf in) throws IOException {
    if (mode == Mode.SPLICE || mode == Mode.COPY) {
      int k = (int) Math.min(remaining, in.readableBytes());
      stream.onDataPart(in.readRetainedSlice(k));
      remaining -= k;
      if (remaining > 0) {
        in.release();
        if (mode == Mode.SPLICE) {
          splice();
        }
        return;
      }
      endTakenFrame();
    }
    int start = in.readerIndex();
    int pos = start;
    int end = in.writerIndex();
    while (pos < end) {
      if (mode == Mode.PASS) {
        int n = (int) Math.min(remaining, end - pos);
        pos += n;
        remaining -= n;
        if (remaining == 0) {
          mode = Mode.HEADER;
        }
        continue;
      }
      if (headerHave > 0) {
        pos = continueSplitHeader(in, pos, end);
        continue;
      }
      int headerLength = webSocketHeaderLength(in, pos, end);
      if (headerLength < 0) {
        pos = continueSplitHeader(in, pos, end); // the header goes on in the next read
        continue;
      }
      // An invalid length answers Long.MAX_VALUE: all the rest is passed on, the decoder ends it.
      long payload = WebSocketHeader.payloadLength(in, pos);
      if (takeable(in, pos, end, headerLength, payload)) {
        int streamId = in.getInt(pos + headerLength + 5);
        int dataLength = (int) (payload - Limits.HEADER_SIZE);
        if (pos > start) {
          ctx.fireChannelRead(in.retainedSlice(start, pos - start));
        }
        TunnelStream s = session.spliceTarget(streamId, dataLength);
        if (s != null) {
          take(in, pos + headerLength + Limits.HEADER_SIZE, s, dataLength);
          return;
        }
        start = pos; // the frames before it may have ended the stream: pass this one on
      }
      if (payload < MIN_SPLICE && ++smallInARow >= SMALL_FRAMES_TO_STOP) {
        splicing = false; // no bulk flow left: read as much as there is again
      }
      pos += headerLength;
      remaining = payload;
      mode = payload == 0 ? Mode.HEADER : Mode.PASS;
    }
    if (start == end) {
      in.release(); // all of it went to a taken frame
      return;
    }
    in.readerIndex(start);
    ctx.fireChannelRead(in);
  }

  /**
   * Takes the DATA frame whose payload starts at {@code payloadStart} of {@code in} for {@code s}.
   */
  private void take(ByteBuf in, int payloadStart, TunnelStream s, int dataLength)
      throws IOException {
    stream = s;
    int k = in.writerIndex() - payloadStart;
    if (k > 0) {
      stream.onDataPart(in.retainedSlice(payloadStart, k));
    }
    in.release();
    remaining = dataLength - k;
    mode = Mode.SPLICE;
    splice();
  }

  /** Splices as much of the taken payload as the socket holds and the stream's pipe takes. */
  private void splice() throws IOException {
    while (remaining > 0) {
      if (!stream.open()) {
        mode = Mode.COPY; // the stream ended: the rest is read and dropped
        return;
      }
      int n = stream.spliceFrom(socketFd, (int) remaining);
      if (n == 0) {
        if (stream.pipeHeld() > 0) {
          mode = Mode.COPY; // the socket is slow to take it: read the rest instead of waiting
          splicing = true;
        }
        return;
      }
      remaining -= n;
    }
    endTakenFrame();
    splicing = true;
    smallInARow = 0;
  }

  private void endTakenFrame() {
    mode = Mode.HEADER;
    stream = null;
  }

  /**
   * Whether the frame at {@code pos} may be taken: a final unmasked binary websocket frame without
   * extension bits, wholly a DATA frame by its header, that the read ends inside of with at least
   * {@link #MIN_SPLICE} bytes still to come.
   */
  private static boolean takeable(ByteBuf in, int pos, int end, int headerLength, long payload) {
    int b0 = in.getUnsignedByte(pos);
    int b1 = in.getUnsignedByte(pos + 1);
    if (b0 != WebSocketHeader.FINAL_BINARY
        || (b1 & 0x80) != 0
        || payload < Limits.HEADER_SIZE
        || payload > Limits.HEADER_SIZE + Limits.MAX_FRAME_PAYLOAD_CEILING) {
      return false;
    }
    int inner = pos + headerLength;
    if (inner + Limits.HEADER_SIZE > end || pos + headerLength + payload - end < MIN_SPLICE) {
      return false;
    }
    return in.getUnsignedMedium(inner) == payload - Limits.HEADER_SIZE
        && in.getUnsignedByte(inner + 3) == FrameType.DATA.code()
        && in.getUnsignedByte(inner + 4) == 0
        && in.getInt(inner + 5) > 0;
  }

  /** The length of the websocket header at {@code pos}, or -1 if the read ends inside it. */
  private static int webSocketHeaderLength(ByteBuf in, int pos, int end) {
    if (end - pos < 2) {
      return -1;
    }
    int length = WebSocketHeader.sizeFrom(in.getUnsignedByte(pos + 1));
    return end - pos < length ? -1 : length;
  }

  /**
   * Collects the bytes of a websocket header that a read split; the frame is passed on. Returns
   * where the bytes after it start.
   */
  private int continueSplitHeader(ByteBuf in, int pos, int end) {
    while (pos < end) {
      header[headerHave++] = in.getByte(pos++);
      if (headerHave >= 2 && headerHave == WebSocketHeader.sizeFrom(header[1] & 0xFF)) {
        long payload = WebSocketHeader.payloadLength(headerBytes, 0);
        headerHave = 0;
        remaining = payload;
        mode = payload == 0 ? Mode.HEADER : Mode.PASS;
        return pos;
      }
    }
    return pos;
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    endTakenFrame();
    ctx.fireChannelInactive();
  }
}
