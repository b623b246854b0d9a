package io.egresstunnel.proto;

import static io.egresstunnel.proto.Limits.HEADER_SIZE;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Encodes frames to bytes and decodes them back, independently of how the bytes travel. The layout
 * of every frame is in docs/protocol.md. A message holds exactly one frame.
 */
public final class FrameCodec {
  private static final int FAMILY_IPV4 = 4;
  private static final int FAMILY_IPV6 = 6;

  private FrameCodec() {}

  /**
   * Decodes the one frame that {@code message} holds and consumes the message's readable bytes. A
   * decoded {@link DataFrame}'s payload is a retained slice of {@code message}; the caller still
   * releases {@code message}. Nothing is retained when a {@link ProtocolException} is thrown.
   *
   * @param maxFramePayload the largest body this receiver declared it accepts
   * @throws ProtocolException if the frame breaks the protocol; session-scoped when the header is
   *     unsound, stream-scoped when only a stream frame's body is
   */
  public static Frame decode(ByteBuf message, int maxFramePayload) {
    int readable = message.readableBytes();
    if (readable < HEADER_SIZE) {
      throw ProtocolException.session(
          ProtocolError.TRUNCATED_HEADER,
          "message of " + readable + " bytes is shorter than the " + HEADER_SIZE + "-byte header");
    }
    int start = message.readerIndex();
    int length = message.getUnsignedMedium(start);
    int typeCode = message.getUnsignedByte(start + 3);
    int flags = message.getUnsignedByte(start + 4);
    int streamId = message.getInt(start + 5);
    if (length > maxFramePayload) {
      throw ProtocolException.session(
          ProtocolError.FRAME_TOO_LARGE,
          "frame body of " + length + " bytes exceeds the limit of " + maxFramePayload);
    }
    if (length != readable - HEADER_SIZE) {
      throw ProtocolException.session(
          ProtocolError.LENGTH_MISMATCH,
          "header declares "
              + length
              + " body bytes but the message holds "
              + (readable - HEADER_SIZE));
    }
    FrameType type = FrameType.fromCode(typeCode);
    if (type == null) {
      throw ProtocolException.session(
          ProtocolError.UNKNOWN_FRAME_TYPE, String.format("frame type 0x%02x", typeCode));
    }
    if (streamId < 0) {
      throw ProtocolException.session(
          ProtocolError.INVALID_STREAM_ID, type + ": the reserved stream id bit is set");
    }
    if (type.streamScoped() && streamId == 0) {
      throw ProtocolException.session(
          ProtocolError.INVALID_STREAM_ID, type + " needs a stream id, got 0");
    }
    if (!type.streamScoped() && streamId != 0) {
      throw ProtocolException.session(
          ProtocolError.INVALID_STREAM_ID, type + " is a session frame, got stream id " + streamId);
    }
    if (flags != 0) {
      throw ProtocolException.session(
          ProtocolError.INVALID_FLAGS, String.format("%s: undefined flags 0x%02x", type, flags));
    }
    int bodyStart = start + HEADER_SIZE;
    Frame frame =
        type == FrameType.DATA
            ? new DataFrame(streamId, message.retainedSlice(bodyStart, length))
            : decodeControl(new BodyReader(message, bodyStart, length, type, streamId));
    message.skipBytes(readable);
    return frame;
  }

  private static Frame decodeControl(BodyReader r) {
    try {
      Frame frame =
          switch (r.type) {
            case AGENT_HELLO -> decodeAgentHello(r);
            case SERVER_HELLO -> decodeServerHello(r);
            case DIAL -> {
              int timeout = r.u31("dial timeout");
              int port = r.u16();
              yield new Dial(r.streamId, timeout, r.string("host", Limits.MAX_NAME_BYTES), port);
            }
            case DIAL_RESULT ->
                new DialResult(r.streamId, DialStatus.fromCode(r.u8()), r.message());
            case WINDOW_UPDATE -> new WindowUpdate(r.streamId, r.u31("window increment"));
            case FIN -> new Fin(r.streamId);
            case RESET -> new Reset(r.streamId, ErrorCode.fromCode(r.u8()), r.message());
            case GO_AWAY -> {
              ErrorCode code = ErrorCode.fromCode(r.u8());
              yield new GoAway(code, r.u31("last stream id"), r.message());
            }
            case DATA -> throw new AssertionError("DATA is decoded without a body reader");
          };
      if (!(frame instanceof AgentHello) && !(frame instanceof ServerHello)) {
        r.expectEnd();
      }
      return frame;
    } catch (IllegalArgumentException e) {
      throw r.error(ProtocolError.INVALID_FIELD, e.getMessage());
    }
  }

  // Hellos may carry bytes after their version-1 fields (extensions of later versions); they are
  // ignored, so that any version can read any hello and negotiate.
  private static AgentHello decodeAgentHello(BodyReader r) {
    int minVersion = r.u16();
    int maxVersion = r.u16();
    int capabilities = r.i32();
    int window = r.u31("initial window");
    int maxPayload = r.u31("max frame payload");
    int kubeletPort = r.u16();
    String nodeName = r.string("node name", Limits.MAX_NAME_BYTES);
    int addressCount = r.u8();
    Limits.check("address count", addressCount, 0, Limits.MAX_HELLO_ENTRIES);
    List<InetAddress> addresses = new ArrayList<>(addressCount);
    for (int i = 0; i < addressCount; i++) {
      addresses.add(r.address());
    }
    int cidrCount = r.u8();
    Limits.check("pod CIDR count", cidrCount, 0, Limits.MAX_HELLO_ENTRIES);
    List<Cidr> cidrs = new ArrayList<>(cidrCount);
    for (int i = 0; i < cidrCount; i++) {
      cidrs.add(new Cidr(r.address(), r.u8()));
    }
    List<Cidr> servedCidrs = List.of();
    List<String> servedHosts = List.of();
    if ((capabilities & AgentHello.CAP_SERVED_NETWORKS) != 0) {
      int n = r.u8();
      Limits.check("served CIDR count", n, 0, Limits.MAX_HELLO_ENTRIES);
      servedCidrs = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        servedCidrs.add(new Cidr(r.address(), r.u8()));
      }
      n = r.u8();
      Limits.check("served host count", n, 0, Limits.MAX_HELLO_ENTRIES);
      servedHosts = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        servedHosts.add(r.string("served host", Limits.MAX_NAME_BYTES));
      }
    }
    return new AgentHello(
        minVersion,
        maxVersion,
        capabilities,
        window,
        maxPayload,
        kubeletPort,
        nodeName,
        addresses,
        cidrs,
        servedCidrs,
        servedHosts);
  }

  private static ServerHello decodeServerHello(BodyReader r) {
    int version = r.u16();
    int capabilities = r.i32();
    int window = r.u31("initial window");
    int maxPayload = r.u31("max frame payload");
    int maxStreams = r.u31("max streams");
    int serverCount = r.u16();
    return new ServerHello(
        version,
        capabilities,
        window,
        maxPayload,
        maxStreams,
        serverCount,
        r.string("server id", Limits.MAX_NAME_BYTES));
  }

  /**
   * Encodes {@code frame} into a new buffer from {@code alloc}; the caller owns the result and
   * still owns {@code frame}. A DATA frame's payload is not copied: the result is a composite of a
   * header buffer and the retained payload.
   */
  public static ByteBuf encode(ByteBufAllocator alloc, Frame frame) {
    if (frame instanceof DataFrame data) {
      ByteBuf payload = data.content();
      ByteBuf header = alloc.buffer(HEADER_SIZE);
      writeHeader(header, FrameType.DATA, data.streamId(), payload.readableBytes());
      return alloc.compositeBuffer(2).addComponents(true, header, payload.retain());
    }
    int bodyLength = bodyLength(frame);
    ByteBuf out = alloc.buffer(HEADER_SIZE + bodyLength);
    writeHeader(out, frame.type(), frame.streamId(), bodyLength);
    writeBody(out, frame);
    return out;
  }

  /** Writes a 9-byte frame header. */
  public static void writeHeader(ByteBuf out, FrameType type, int streamId, int bodyLength) {
    out.writeMedium(bodyLength);
    out.writeByte(type.code());
    out.writeByte(0);
    out.writeInt(streamId);
  }

  private static int bodyLength(Frame frame) {
    return switch (frame.type()) {
      case AGENT_HELLO -> {
        AgentHello h = (AgentHello) frame;
        int n = 2 + 2 + 4 + 4 + 4 + 2 + stringLength(h.nodeName()) + 1 + 1;
        for (InetAddress a : h.addresses()) {
          n += addressLength(a);
        }
        for (Cidr c : h.podCidrs()) {
          n += addressLength(c.address()) + 1;
        }
        if ((h.capabilities() & AgentHello.CAP_SERVED_NETWORKS) != 0) {
          n += 2;
          for (Cidr c : h.servedCidrs()) {
            n += addressLength(c.address()) + 1;
          }
          for (String host : h.servedHosts()) {
            n += stringLength(host);
          }
        }
        yield n;
      }
      case SERVER_HELLO -> 2 + 4 + 4 + 4 + 4 + 2 + stringLength(((ServerHello) frame).serverId());
      case DIAL -> 4 + 2 + stringLength(((Dial) frame).host());
      case DIAL_RESULT -> 1 + stringLength(((DialResult) frame).message());
      case WINDOW_UPDATE -> 4;
      case FIN -> 0;
      case RESET -> 1 + stringLength(((Reset) frame).message());
      case GO_AWAY -> 1 + 4 + stringLength(((GoAway) frame).message());
      case DATA -> ((DataFrame) frame).content().readableBytes();
    };
  }

  private static void writeBody(ByteBuf out, Frame frame) {
    switch (frame.type()) {
      case AGENT_HELLO -> {
        AgentHello h = (AgentHello) frame;
        out.writeShort(h.minVersion());
        out.writeShort(h.maxVersion());
        out.writeInt(h.capabilities());
        out.writeInt(h.initialWindow());
        out.writeInt(h.maxFramePayload());
        out.writeShort(h.kubeletPort());
        writeString(out, h.nodeName());
        out.writeByte(h.addresses().size());
        for (InetAddress a : h.addresses()) {
          writeAddress(out, a);
        }
        out.writeByte(h.podCidrs().size());
        for (Cidr c : h.podCidrs()) {
          writeAddress(out, c.address());
          out.writeByte(c.prefixLength());
        }
        if ((h.capabilities() & AgentHello.CAP_SERVED_NETWORKS) != 0) {
          out.writeByte(h.servedCidrs().size());
          for (Cidr c : h.servedCidrs()) {
            writeAddress(out, c.address());
            out.writeByte(c.prefixLength());
          }
          out.writeByte(h.servedHosts().size());
          for (String host : h.servedHosts()) {
            writeString(out, host);
          }
        }
      }
      case SERVER_HELLO -> {
        ServerHello h = (ServerHello) frame;
        out.writeShort(h.version());
        out.writeInt(h.capabilities());
        out.writeInt(h.initialWindow());
        out.writeInt(h.maxFramePayload());
        out.writeInt(h.maxStreams());
        out.writeShort(h.serverCount());
        writeString(out, h.serverId());
      }
      case DIAL -> {
        Dial d = (Dial) frame;
        out.writeInt(d.timeoutMillis());
        out.writeShort(d.port());
        writeString(out, d.host());
      }
      case DIAL_RESULT -> {
        DialResult d = (DialResult) frame;
        out.writeByte(d.status().code());
        writeString(out, d.message());
      }
      case WINDOW_UPDATE -> out.writeInt(((WindowUpdate) frame).increment());
      case FIN -> {}
      case RESET -> {
        Reset r = (Reset) frame;
        out.writeByte(r.code().code());
        writeString(out, r.message());
      }
      case GO_AWAY -> {
        GoAway g = (GoAway) frame;
        out.writeByte(g.code().code());
        out.writeInt(g.lastStreamId());
        writeString(out, g.message());
      }
      case DATA -> throw new AssertionError("DATA is encoded without copying, elsewhere");
    }
  }

  private static int stringLength(String s) {
    return 2 + ByteBufUtil.utf8Bytes(s);
  }

  private static void writeString(ByteBuf out, String s) {
    out.writeShort(ByteBufUtil.utf8Bytes(s));
    ByteBufUtil.writeUtf8(out, s);
  }

  private static int addressLength(InetAddress a) {
    return 1 + a.getAddress().length;
  }

  private static void writeAddress(ByteBuf out, InetAddress a) {
    out.writeByte(a instanceof Inet4Address ? FAMILY_IPV4 : FAMILY_IPV6);
    out.writeBytes(a.getAddress());
  }

  /** Reads a control frame's body fields in order, turning every shortfall into a typed error. */
  private static final class BodyReader {
    final ByteBuf buf;
    final int start;
    final int end;
    final FrameType type;
    final int streamId;
    int pos;

    BodyReader(ByteBuf buf, int start, int length, FrameType type, int streamId) {
      this.buf = buf;
      this.start = start;
      this.pos = start;
      this.end = start + length;
      this.type = type;
      this.streamId = streamId;
    }

    ProtocolException error(ProtocolError error, String message) {
      return new ProtocolException(error, streamId, type + ": " + message);
    }

    private void need(int bytes) {
      if (end - pos < bytes) {
        throw error(
            ProtocolError.MALFORMED_BODY,
            "body ends "
                + (bytes - (end - pos))
                + " bytes short of a field (at offset "
                + (pos - start)
                + ")");
      }
    }

    int u8() {
      need(1);
      return buf.getUnsignedByte(pos++);
    }

    int u16() {
      need(2);
      int v = buf.getUnsignedShort(pos);
      pos += 2;
      return v;
    }

    int i32() {
      need(4);
      int v = buf.getInt(pos);
      pos += 4;
      return v;
    }

    int u31(String field) {
      long v = i32() & 0xFFFF_FFFFL;
      return (int) Limits.check(field, v, 0, Integer.MAX_VALUE);
    }

    String string(String field, int maxBytes) {
      int length = u16();
      if (length > maxBytes) {
        throw error(
            ProtocolError.INVALID_FIELD,
            field + " is " + length + " bytes long; at most " + maxBytes + " are allowed");
      }
      need(length);
      if (!ByteBufUtil.isText(buf, pos, length, StandardCharsets.UTF_8)) {
        throw error(ProtocolError.INVALID_UTF8, field + " is not valid UTF-8");
      }
      String s = buf.toString(pos, length, StandardCharsets.UTF_8);
      pos += length;
      return s;
    }

    String message() {
      return string("message", Limits.MAX_MESSAGE_BYTES);
    }

    InetAddress address() {
      int family = u8();
      int size =
          switch (family) {
            case FAMILY_IPV4 -> 4;
            case FAMILY_IPV6 -> 16;
            default ->
                throw error(
                    ProtocolError.INVALID_FIELD, "address family " + family + " is not 4 or 6");
          };
      need(size);
      byte[] raw = new byte[size];
      buf.getBytes(pos, raw);
      pos += size;
      try {
        // Inet6Address keeps an IPv4-mapped address IPv6, so the family survives a round trip.
        return size == 4 ? InetAddress.getByAddress(raw) : Inet6Address.getByAddress(null, raw, -1);
      } catch (UnknownHostException e) {
        throw new AssertionError("a 4- or 16-byte address is always valid", e);
      }
    }

    void expectEnd() {
      if (pos != end) {
        throw error(
            ProtocolError.MALFORMED_BODY, (end - pos) + " bytes follow the frame's last field");
      }
    }
  }
}
