package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.ChannelPromise;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CorruptedWebSocketFrameException;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PongWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocket08FrameDecoder;
import io.netty.handler.codec.http.websocketx.WebSocketCloseStatus;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * Decodes RFC 6455 websocket frames like Netty's {@link WebSocket08FrameDecoder} (same frame
 * classes, same checks in the same order, same close frames and exceptions, same {@link
 * WebSocketDecoderConfig}), but hands data payloads on without copying them: a payload is a
 * retained slice of the buffer it arrived in, or a composite of slices when it arrived over several
 * reads. Masked payloads are unmasked in place, 8 bytes at a time.
 *
 * <p><b>Receiving.</b> Each inbound buffer is queued as it is; nothing of a frame is consumed until
 * the whole frame has arrived (its header is checked as soon as its bytes are there, so a protocol
 * violation is reported as early as Netty reports it). A read smaller than {@value #MERGE_BELOW}
 * bytes is copied into the spare capacity of the read before it, as a cumulation would; larger
 * reads are never copied. If more than {@value #MAX_QUEUED_BUFFERS} buffers are queued (only tiny
 * reads without spare room do that), they are merged into one.
 *
 * <p><b>Unmasking in place.</b> The bytes of a frame still queued are read by no one but this
 * decoder: the slices handed out earlier cover earlier bytes, and a buffer is only ever appended to
 * beyond its writer index and within its current capacity, never reallocated (which would move the
 * memory under those slices). A buffer is written to only if it was exclusively ours when it
 * arrived: not read-only, a reference count of 1 (nobody else holds it), big-endian, and not a
 * composite (whose components others may hold). A masked payload in any other buffer is copied and
 * unmasked in the copy, as Netty does, and the buffer is left as it was.
 *
 * <p><b>Memory.</b> A slice keeps its whole buffer alive until it is released, so a payload held by
 * a slow consumer pins the read buffers it arrived in, not just its own bytes. To bound that, a
 * data payload is sliced only if the buffers it spans hold at most {@code maxPinFactor} times its
 * length in capacity; otherwise it is copied into a buffer of its own size. Control frames (at most
 * 125 bytes) are always copied. A stalled stream holding a window of {@code W} bytes of payloads
 * thus pins at most {@code maxPinFactor × W} bytes of buffers (instead of {@code W} with a copying
 * decoder); with 256 KiB frames and 256 KiB reads it is about twice {@code W}, since such a frame
 * spans two reads.
 *
 * <p><b>Installing.</b> Netty's handshakers add their own decoder ({@code "wsdecoder"} on a server,
 * {@code "ws-decoder"} on a client). Replace it before it has received a byte: on a client when
 * {@code HANDSHAKE_COMPLETE} fires ({@link #replaceStockDecoder}), on a server as the 101 response
 * is written ({@link #serverInstaller}).
 */
public final class SlicingWebSocketFrameDecoder extends ChannelInboundHandlerAdapter
    implements io.netty.handler.codec.http.websocketx.WebSocketFrameDecoder {

  /**
   * The default bound on capacity pinned per payload byte: 256 KiB reads carry payloads of 32 KiB
   * and more without a copy.
   */
  public static final int DEFAULT_MAX_PIN_FACTOR = 8;

  /**
   * Whether sessions use this decoder instead of Netty's: opt-in with {@code
   * -Degress.websocket.decoder=slicing}, because it may pin more memory per stalled stream (see
   * "Memory" above and docs/benchmarks.md).
   */
  public static boolean enabled() {
    return "slicing".equals(System.getProperty("egress.websocket.decoder", "stock"));
  }

  /** Reads smaller than this are copied into the previous read's spare capacity if it has room. */
  static final int MERGE_BELOW = 4096;

  /** More queued buffers than this are merged into one. */
  static final int MAX_QUEUED_BUFFERS = 256;

  private static final int CONSOLIDATE_HEADROOM = 64 * 1024;

  private static final int OPCODE_CONT = 0x0;
  private static final int OPCODE_TEXT = 0x1;
  private static final int OPCODE_BINARY = 0x2;
  private static final int OPCODE_CLOSE = 0x8;
  private static final int OPCODE_PING = 0x9;
  private static final int OPCODE_PONG = 0xA;

  private final WebSocketDecoderConfig config;
  private final int maxPinFactor;

  // The received bytes not consumed yet: a ring of buffers, each with its readable bytes queued.
  private ByteBuf[] queue = new ByteBuf[8];
  private boolean[] exclusive = new boolean[8];
  private int head;
  private int count;
  private long queued;

  // The frame in progress; its header bytes stay queued until the whole frame has arrived.
  private int headerLength; // 0 until the header has arrived and passed its checks
  private boolean frameFinal;
  private int frameRsv;
  private int frameOpcode;
  private boolean frameMasked;
  private int frameMask;
  private int framePayloadLength;

  private int fragmentedFramesCount;
  private boolean receivedClosingHandshake;
  private boolean corrupt;

  private boolean decoding;
  private boolean selfFiredChannelRead;
  private boolean firedChannelRead;

  /** A decoder with {@link #DEFAULT_MAX_PIN_FACTOR}. */
  public SlicingWebSocketFrameDecoder(WebSocketDecoderConfig config) {
    this(config, DEFAULT_MAX_PIN_FACTOR);
  }

  /**
   * @param config the same settings Netty's decoder takes; {@code withUTF8Validator} is not this
   *     decoder's concern (Netty's protocol handlers add their own validator)
   * @param maxPinFactor a data payload is sliced only if the buffers it spans hold at most this
   *     many times its length in capacity; otherwise it is copied. {@link Integer#MAX_VALUE} slices
   *     nearly always.
   */
  public SlicingWebSocketFrameDecoder(WebSocketDecoderConfig config, int maxPinFactor) {
    this.config = Objects.requireNonNull(config, "config");
    if (maxPinFactor < 1) {
      throw new IllegalArgumentException("maxPinFactor must be at least 1, got " + maxPinFactor);
    }
    this.maxPinFactor = maxPinFactor;
  }

  /**
   * Replaces the {@link WebSocket08FrameDecoder} in {@code p}, under its own name, with a decoder
   * for {@code config}. Call it only before the stock decoder has received any byte: on a client
   * from {@code userEventTriggered(HANDSHAKE_COMPLETE)}, which fires while the 101 response is
   * being read, before the bytes after it are passed on.
   *
   * @throws IllegalStateException if {@code p} holds no such decoder
   */
  public static SlicingWebSocketFrameDecoder replaceStockDecoder(
      ChannelPipeline p, WebSocketDecoderConfig config) {
    ChannelHandlerContext stock = p.context(WebSocket08FrameDecoder.class);
    if (stock == null) {
      throw new IllegalStateException("no WebSocket08FrameDecoder in the pipeline");
    }
    SlicingWebSocketFrameDecoder decoder = new SlicingWebSocketFrameDecoder(config);
    p.replace(stock.handler(), stock.name(), decoder);
    return decoder;
  }

  /**
   * A handler for a server pipeline that replaces the stock decoder when the handshake's 101
   * response passes it, and then removes itself. The handshaker adds its decoder just before it
   * writes that response, and the client sends no frame before it has received it, so no byte can
   * have reached the stock decoder yet. Add it before {@code WebSocketServerProtocolHandler}: the
   * response is written from the handshake handler that one inserts before itself.
   */
  public static ChannelHandler serverInstaller(WebSocketDecoderConfig config) {
    return new ServerInstaller(Objects.requireNonNull(config, "config"));
  }

  private static final class ServerInstaller extends ChannelOutboundHandlerAdapter {
    private final WebSocketDecoderConfig config;

    ServerInstaller(WebSocketDecoderConfig config) {
      this.config = config;
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
      if (msg instanceof HttpResponse response
          && response.status().code() == HttpResponseStatus.SWITCHING_PROTOCOLS.code()) {
        replaceStockDecoder(ctx.pipeline(), config);
        ctx.pipeline().remove(this);
      }
      ctx.write(msg, promise);
    }
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof ByteBuf in)) {
      ctx.fireChannelRead(msg);
      return;
    }
    selfFiredChannelRead = true;
    if (receivedClosingHandshake || corrupt) {
      in.release(); // Netty's decoder discards everything after a close frame or an error too
      return;
    }
    enqueue(ctx.alloc(), in);
    if (decoding) {
      return; // re-entered from a handler downstream: the loop below picks the bytes up
    }
    decoding = true;
    try {
      WebSocketFrame frame;
      while ((frame = decodeFrame(ctx)) != null) {
        firedChannelRead = true;
        ctx.fireChannelRead(frame);
        if (ctx.isRemoved()) {
          return; // handlerRemoved passed the rest on
        }
      }
    } catch (DecoderException e) {
      throw e; // a protocol violation, already answered
    } catch (RuntimeException e) {
      corrupt = true; // the queue may be half consumed: decode nothing more
      releaseQueued();
      throw new DecoderException(e);
    } finally {
      decoding = false;
    }
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    if (selfFiredChannelRead && !firedChannelRead && !ctx.channel().config().isAutoRead()) {
      ctx.read(); // as ByteToMessageDecoder: a read that completed no frame asks for the next
    }
    selfFiredChannelRead = false;
    firedChannelRead = false;
    ctx.fireChannelReadComplete();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    releaseQueued();
    ctx.fireChannelInactive();
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (evt instanceof ChannelInputShutdownEvent) {
      releaseQueued(); // no more bytes will complete the frame in progress
    }
    ctx.fireUserEventTriggered(evt);
  }

  /**
   * Passes the bytes not decoded yet on to the next handler, from the start of the frame in
   * progress, as {@code ByteToMessageDecoder} passes its cumulation on.
   */
  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    headerLength = 0;
    if (count == 0) {
      return;
    }
    if (receivedClosingHandshake || corrupt) {
      releaseQueued();
      return;
    }
    while (count > 0) {
      ByteBuf b = poll();
      queued -= b.readableBytes();
      ctx.fireChannelRead(b);
    }
    ctx.fireChannelReadComplete();
  }

  // ---- decoding

  /** The next complete frame, or null when more bytes are needed or the input is discarded. */
  private WebSocketFrame decodeFrame(ChannelHandlerContext ctx) {
    if (receivedClosingHandshake || corrupt) {
      releaseQueued();
      return null;
    }
    if (headerLength == 0 && !readHeader(ctx)) {
      return null;
    }
    if (queued - headerLength < framePayloadLength) {
      return null;
    }
    skip(headerLength);
    headerLength = 0;
    ByteBuf payload =
        framePayloadLength == 0
            ? Unpooled.EMPTY_BUFFER
            : takePayload(ctx.alloc(), framePayloadLength);
    return newFrame(ctx, payload);
  }

  /**
   * Reads and checks the header of the frame at the front of the queue without consuming it. The
   * checks and their order are those of {@link WebSocket08FrameDecoder}.
   *
   * @return true once the whole header has arrived; false if more bytes are needed
   * @throws CorruptedWebSocketFrameException on a protocol violation, after answering it
   */
  private boolean readHeader(ChannelHandlerContext ctx) {
    if (queued < 2) {
      return false;
    }
    int b0 = byteAt(0);
    int b1 = byteAt(1);
    boolean fin = (b0 & 0x80) != 0;
    int rsv = (b0 & 0x70) >> 4;
    int opcode = b0 & 0x0F;
    boolean masked = (b1 & 0x80) != 0;
    int len1 = b1 & 0x7F;

    if (rsv != 0 && !config.allowExtensions()) {
      throw violation(ctx, "RSV != 0 and no extension negotiated, RSV:" + rsv);
    }
    if (!config.allowMaskMismatch() && config.expectMaskedFrames() != masked) {
      throw violation(ctx, "received a frame that is not masked as expected");
    }
    if (opcode > 7) { // control frame
      if (!fin) {
        throw violation(ctx, "fragmented control frame");
      }
      if (len1 > 125) {
        throw violation(ctx, "control frame with payload length > 125 octets");
      }
      if (opcode != OPCODE_CLOSE && opcode != OPCODE_PING && opcode != OPCODE_PONG) {
        throw violation(ctx, "control frame using reserved opcode " + opcode);
      }
      if (opcode == OPCODE_CLOSE && len1 == 1) {
        throw violation(ctx, "received close control frame with payload len 1");
      }
    } else { // data frame
      if (opcode != OPCODE_CONT && opcode != OPCODE_TEXT && opcode != OPCODE_BINARY) {
        throw violation(ctx, "data frame using reserved opcode " + opcode);
      }
      if (fragmentedFramesCount == 0 && opcode == OPCODE_CONT) {
        throw violation(ctx, "received continuation data frame outside fragmented message");
      }
      if (fragmentedFramesCount != 0 && opcode != OPCODE_CONT) {
        throw violation(
            ctx, "received non-continuation data frame while inside fragmented message");
      }
    }

    int lengthBytes = len1 == 126 ? 2 : len1 == 127 ? 8 : 0;
    if (queued < 2 + lengthBytes) {
      return false;
    }
    long length;
    if (len1 == 126) {
      length = bytesAt(2, 2);
      if (length < 126) {
        throw violation(ctx, "invalid data frame length (not using minimal length encoding)");
      }
    } else if (len1 == 127) {
      length = bytesAt(2, 8);
      if (length < 0) {
        throw violation(ctx, "invalid data frame length (negative length)");
      }
      if (length < 65536) {
        throw violation(ctx, "invalid data frame length (not using minimal length encoding)");
      }
    } else {
      length = len1;
    }
    if (length > config.maxFramePayloadLength()) {
      throw violation(
          ctx,
          WebSocketCloseStatus.MESSAGE_TOO_BIG,
          "Max frame length of " + config.maxFramePayloadLength() + " has been exceeded.");
    }

    int headerLen = 2 + lengthBytes + (masked ? 4 : 0);
    if (queued < headerLen) {
      return false;
    }
    frameFinal = fin;
    frameRsv = rsv;
    frameOpcode = opcode;
    frameMasked = masked;
    frameMask = masked ? (int) bytesAt(2 + lengthBytes, 4) : 0;
    framePayloadLength = (int) length; // at most maxFramePayloadLength, an int
    headerLength = headerLen;
    return true;
  }

  private WebSocketFrame newFrame(ChannelHandlerContext ctx, ByteBuf payload) {
    switch (frameOpcode) {
      case OPCODE_PING:
        return new PingWebSocketFrame(frameFinal, frameRsv, payload);
      case OPCODE_PONG:
        return new PongWebSocketFrame(frameFinal, frameRsv, payload);
      case OPCODE_CLOSE:
        receivedClosingHandshake = true;
        try {
          checkCloseFrameBody(ctx, payload);
        } catch (RuntimeException e) {
          payload.release();
          throw e;
        }
        return new CloseWebSocketFrame(frameFinal, frameRsv, payload);
      default:
        break;
    }
    if (frameFinal) {
      fragmentedFramesCount = 0;
    } else {
      fragmentedFramesCount++;
    }
    switch (frameOpcode) {
      case OPCODE_TEXT:
        return new TextWebSocketFrame(frameFinal, frameRsv, payload);
      case OPCODE_BINARY:
        return new BinaryWebSocketFrame(frameFinal, frameRsv, payload);
      case OPCODE_CONT:
        return new ContinuationWebSocketFrame(frameFinal, frameRsv, payload);
      default:
        payload.release();
        throw new UnsupportedOperationException(
            "Cannot decode web socket frame with opcode: " + frameOpcode);
    }
  }

  /** Netty's checks of a close frame's body: a valid status code, then a UTF-8 reason. */
  private void checkCloseFrameBody(ChannelHandlerContext ctx, ByteBuf body) {
    if (!body.isReadable()) {
      return;
    }
    if (body.readableBytes() < 2) {
      throw violation(ctx, WebSocketCloseStatus.INVALID_PAYLOAD_DATA, "Invalid close frame body");
    }
    int statusCode = body.getShort(body.readerIndex()); // signed, as Netty reads it
    if (!WebSocketCloseStatus.isValidStatusCode(statusCode)) {
      throw violation(ctx, "Invalid close frame getStatus code: " + statusCode);
    }
    if (body.readableBytes() > 2
        && !isUtf8Prefix(body, body.readerIndex() + 2, body.writerIndex())) {
      throw violation(
          ctx,
          new CorruptedWebSocketFrameException(
              WebSocketCloseStatus.INVALID_PAYLOAD_DATA, "bytes are not UTF-8"));
    }
  }

  /**
   * True unless {@code [from, to)} contains a byte that cannot continue well-formed UTF-8
   * (Unicode's table 3-7). A sequence cut short at the end passes: Netty's check of a close reason
   * does not finish its validator either.
   */
  static boolean isUtf8Prefix(ByteBuf b, int from, int to) {
    int i = from;
    while (i < to) {
      int c = b.getUnsignedByte(i++);
      if (c < 0x80) {
        continue;
      }
      int trailing;
      int lo = 0x80;
      int hi = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        trailing = 1;
      } else if (c == 0xE0) {
        trailing = 2;
        lo = 0xA0;
      } else if (c == 0xED) {
        trailing = 2;
        hi = 0x9F;
      } else if (c >= 0xE1 && c <= 0xEF) {
        trailing = 2;
      } else if (c == 0xF0) {
        trailing = 3;
        lo = 0x90;
      } else if (c == 0xF4) {
        trailing = 3;
        hi = 0x8F;
      } else if (c >= 0xF1 && c <= 0xF3) {
        trailing = 3;
      } else {
        return false;
      }
      for (int k = 0; k < trailing; k++) {
        if (i >= to) {
          return true;
        }
        int d = b.getUnsignedByte(i++);
        if (d < lo || d > hi) {
          return false;
        }
        lo = 0x80;
        hi = 0xBF;
      }
    }
    return true;
  }

  private CorruptedWebSocketFrameException violation(ChannelHandlerContext ctx, String reason) {
    return violation(ctx, WebSocketCloseStatus.PROTOCOL_ERROR, reason);
  }

  private CorruptedWebSocketFrameException violation(
      ChannelHandlerContext ctx, WebSocketCloseStatus status, String reason) {
    return violation(ctx, new CorruptedWebSocketFrameException(status, reason));
  }

  /**
   * Netty's {@code protocolViolation}: discard all input from now on and, if so configured, answer
   * with a close frame (an empty write once a close frame has been received) and close.
   */
  private CorruptedWebSocketFrameException violation(
      ChannelHandlerContext ctx, CorruptedWebSocketFrameException ex) {
    corrupt = true;
    releaseQueued();
    if (ctx.channel().isActive() && config.closeOnProtocolViolation()) {
      Object closeMessage;
      if (receivedClosingHandshake) {
        closeMessage = Unpooled.EMPTY_BUFFER;
      } else {
        WebSocketCloseStatus status = ex.closeStatus();
        String reason = ex.getMessage() != null ? ex.getMessage() : status.reasonText();
        closeMessage = new CloseWebSocketFrame(status, reason);
      }
      ctx.writeAndFlush(closeMessage).addListener(ChannelFutureListener.CLOSE);
    }
    return ex;
  }

  // ---- payloads

  /** Takes the next {@code len} (≥ 1) queued bytes as a payload, unmasked. */
  private ByteBuf takePayload(ByteBufAllocator alloc, int len) {
    if (frameOpcode <= 7) {
      ByteBuf first = queue[head];
      int firstReadable = first.readableBytes();
      if (firstReadable >= len) {
        if ((!frameMasked || exclusive[head]) && pinsLittle(first.capacity(), len)) {
          if (frameMasked) {
            unmask(first, first.readerIndex(), len, frameMask);
          }
          queued -= len;
          // A slice even when the payload is all that is left of the buffer: its indexes start at
          // 0, as those of a copy do, for any handler that reads them absolutely.
          ByteBuf payload = first.readRetainedSlice(len);
          if (firstReadable == len) {
            poll().release();
          }
          return payload;
        }
      } else {
        long capacity = 0;
        boolean allExclusive = true;
        int pieces = 0;
        for (int left = len; left > 0; pieces++) {
          int s = slot(pieces);
          capacity += queue[s].capacity();
          allExclusive &= exclusive[s];
          left -= Math.min(left, queue[s].readableBytes());
        }
        if ((!frameMasked || allExclusive) && pinsLittle(capacity, len)) {
          return composite(alloc, len, pieces);
        }
      }
    }
    return copy(alloc, len);
  }

  private boolean pinsLittle(long capacity, int len) {
    return capacity <= (long) maxPinFactor * len;
  }

  /** A payload spread over {@code pieces} queued buffers, as a composite of slices of them. */
  private ByteBuf composite(ByteBufAllocator alloc, int len, int pieces) {
    CompositeByteBuf out = alloc.compositeBuffer(pieces);
    try {
      for (int offset = 0; offset < len; ) {
        ByteBuf b = queue[head];
        int readable = b.readableBytes();
        int n = Math.min(len - offset, readable);
        if (frameMasked) {
          // The piece starts at payload offset `offset`: its first byte takes mask byte offset % 4.
          unmask(b, b.readerIndex(), n, Integer.rotateLeft(frameMask, 8 * (offset & 3)));
        }
        ByteBuf part = n == readable ? poll() : b.readRetainedSlice(n);
        queued -= n;
        offset += n;
        out.addComponent(true, part);
      }
      return out;
    } catch (RuntimeException | Error e) {
      out.release();
      throw e;
    }
  }

  /** Netty's way: a buffer of the payload's own size, unmasked there. */
  private ByteBuf copy(ByteBufAllocator alloc, int len) {
    ByteBuf out = alloc.buffer(len);
    try {
      for (int left = len; left > 0; ) {
        ByteBuf b = queue[head];
        int n = Math.min(left, b.readableBytes());
        out.writeBytes(b, n);
        queued -= n;
        left -= n;
        if (!b.isReadable()) {
          poll().release();
        }
      }
      if (frameMasked) {
        unmask(out, out.readerIndex(), len, frameMask);
      }
      return out;
    } catch (RuntimeException | Error e) {
      out.release();
      throw e;
    }
  }

  /**
   * XORs {@code length} bytes at {@code index} with the repeating 4-byte {@code mask} (big-endian:
   * the first byte takes the mask's top byte), 8 bytes at a time.
   */
  static void unmask(ByteBuf buf, int index, int length, int mask) {
    if (mask == 0) {
      return;
    }
    long beMask = (mask & 0xFFFFFFFFL) | ((long) mask << 32);
    long leMask = Long.reverseBytes(beMask); // little-endian accessors: no byte swap on x86/ARM
    int i = index;
    int end = index + length;
    for (; i + 7 < end; i += 8) {
      buf.setLongLE(i, buf.getLongLE(i) ^ leMask);
    }
    // Fewer than 8 bytes left, starting at a multiple of 4 into the pattern.
    for (int k = 0; i < end; i++, k++) {
      buf.setByte(i, buf.getByte(i) ^ (mask >>> (24 - 8 * (k & 3))));
    }
  }

  // ---- the queue of received buffers

  private void enqueue(ByteBufAllocator alloc, ByteBuf in) {
    int n = in.readableBytes();
    if (n == 0) {
      in.release();
      return;
    }
    if (count > 0) {
      int t = slot(count - 1);
      ByteBuf tail = queue[t];
      // Beyond the writer index and within the capacity: no slice covers those bytes, and the
      // memory does not move.
      if (n < MERGE_BELOW && exclusive[t] && n <= tail.maxFastWritableBytes()) {
        tail.writeBytes(in, in.readerIndex(), n);
        in.release();
        queued += n;
        return;
      }
    }
    if (count == queue.length) {
      grow();
    }
    int s = slot(count++);
    queue[s] = in;
    exclusive[s] = isExclusive(in);
    queued += n;
    if (count > MAX_QUEUED_BUFFERS && queued <= Integer.MAX_VALUE - CONSOLIDATE_HEADROOM) {
      consolidate(alloc);
    }
  }

  @SuppressWarnings("deprecation") // order(): a swapped buffer would need a swapped mask
  private static boolean isExclusive(ByteBuf in) {
    return !in.isReadOnly()
        && in.refCnt() == 1
        && in.order() == ByteOrder.BIG_ENDIAN
        && !(in instanceof CompositeByteBuf);
  }

  private void consolidate(ByteBufAllocator alloc) {
    ByteBuf merged = alloc.buffer((int) queued + CONSOLIDATE_HEADROOM);
    while (count > 0) {
      ByteBuf b = poll();
      merged.writeBytes(b);
      b.release();
    }
    head = 0;
    count = 1;
    queue[0] = merged;
    exclusive[0] = true;
  }

  private void grow() {
    int n = queue.length;
    ByteBuf[] q = new ByteBuf[n * 2];
    boolean[] e = new boolean[n * 2];
    for (int i = 0; i < count; i++) {
      q[i] = queue[slot(i)];
      e[i] = exclusive[slot(i)];
    }
    queue = q;
    exclusive = e;
    head = 0;
  }

  private int slot(int i) {
    return (head + i) & (queue.length - 1);
  }

  /** Removes the first buffer from the queue and returns it; the caller owns it. */
  private ByteBuf poll() {
    ByteBuf b = queue[head];
    queue[head] = null;
    head = (head + 1) & (queue.length - 1);
    count--;
    return b;
  }

  private void skip(int n) {
    while (n > 0) {
      ByteBuf b = queue[head];
      int readable = b.readableBytes();
      if (readable > n) {
        b.skipBytes(n);
        queued -= n;
        return;
      }
      n -= readable;
      queued -= readable;
      poll().release();
    }
  }

  private void releaseQueued() {
    while (count > 0) {
      poll().release();
    }
    queued = 0;
    headerLength = 0;
  }

  /** The unsigned byte {@code offset} bytes into the queue. */
  private int byteAt(int offset) {
    for (int i = 0; ; i++) {
      ByteBuf b = queue[slot(i)];
      int readable = b.readableBytes();
      if (offset < readable) {
        return b.getUnsignedByte(b.readerIndex() + offset);
      }
      offset -= readable;
    }
  }

  /** {@code width} (≤ 8) bytes from {@code offset} into the queue, big-endian. */
  private long bytesAt(int offset, int width) {
    ByteBuf first = queue[head];
    if (first.readableBytes() >= offset + width) {
      int at = first.readerIndex() + offset;
      switch (width) {
        case 2:
          return first.getUnsignedShort(at);
        case 4:
          return first.getUnsignedInt(at);
        case 8:
          return first.getLong(at);
        default:
          break;
      }
    }
    long v = 0;
    for (int k = 0; k < width; k++) {
      v = (v << 8) | byteAt(offset + k);
    }
    return v;
  }
}
