package io.egresstunnel.server.frontend.grpc;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.util.ReferenceCounted;
import java.nio.charset.StandardCharsets;

/**
 * Konnectivity's {@code Packet} (konnectivity-client's {@code client.proto}: the same field numbers
 * and enum values, see src/main/proto/konnectivity.proto), with its protobuf wire format read and
 * written directly on ByteBufs: a DATA payload is decoded as a slice of the received buffer and
 * encoded without a copy, which generated protobuf classes cannot do.
 */
public sealed interface Packet {

  /** {@code PacketType}: its protobuf enum values. */
  enum Type {
    DIAL_REQ,
    DIAL_RSP,
    CLOSE_REQ,
    CLOSE_RSP,
    DATA,
    DIAL_CLS,
    DRAIN
  }

  Type type();

  /** {@code DialRequest}: field 2 of Packet. */
  record DialRequest(String protocol, String address, long random) implements Packet {
    @Override
    public Type type() {
      return Type.DIAL_REQ;
    }
  }

  /** {@code DialResponse}: field 3. An empty error means the dial succeeded. */
  record DialResponse(String error, long connectId, long random) implements Packet {
    @Override
    public Type type() {
      return Type.DIAL_RSP;
    }
  }

  /** {@code Data}: field 4. Owns {@code data}; release it, or hand it on. */
  record Data(long connectId, String error, ByteBuf data) implements Packet, ReferenceCounted {
    @Override
    public Type type() {
      return Type.DATA;
    }

    @Override
    public int refCnt() {
      return data.refCnt();
    }

    @Override
    public Data retain() {
      data.retain();
      return this;
    }

    @Override
    public Data retain(int increment) {
      data.retain(increment);
      return this;
    }

    @Override
    public Data touch() {
      data.touch();
      return this;
    }

    @Override
    public Data touch(Object hint) {
      data.touch(hint);
      return this;
    }

    @Override
    public boolean release() {
      return data.release();
    }

    @Override
    public boolean release(int decrement) {
      return data.release(decrement);
    }
  }

  /** {@code CloseRequest}: field 5. */
  record CloseRequest(long connectId) implements Packet {
    @Override
    public Type type() {
      return Type.CLOSE_REQ;
    }
  }

  /** {@code CloseResponse}: field 6. */
  record CloseResponse(String error, long connectId) implements Packet {
    @Override
    public Type type() {
      return Type.CLOSE_RSP;
    }
  }

  /** {@code CloseDial}: field 7. */
  record CloseDial(long random) implements Packet {
    @Override
    public Type type() {
      return Type.DIAL_CLS;
    }
  }

  /** {@code Drain}: field 8, no fields. */
  record Drain() implements Packet {
    @Override
    public Type type() {
      return Type.DRAIN;
    }
  }

  /** A packet that does not follow the format; it ends its gRPC call only. */
  final class MalformedPacketException extends RuntimeException {
    MalformedPacketException(String message) {
      super(message);
    }
  }

  // ---- decoding ------------------------------------------------------------------------------

  /**
   * Decodes one whole message from {@code in}'s readable bytes (they are consumed). A DATA payload
   * is a retained slice of {@code in}; the caller still releases {@code in}. Unknown fields are
   * skipped, as protobuf requires.
   */
  static Packet decode(ByteBuf in) {
    int type = 0;
    Packet payload = null;
    while (in.isReadable()) {
      int tag = Wire.readVarint32(in);
      int field = tag >>> 3;
      int wireType = tag & 7;
      if (field == 1 && wireType == Wire.VARINT) {
        type = (int) Wire.readVarint64(in);
      } else if (field >= 2 && field <= 8 && wireType == Wire.LENGTH) {
        ByteBuf body = Wire.readLengthDelimited(in);
        if (payload instanceof Data old) {
          old.release(); // a repeated oneof field: the last one wins
        }
        payload = decodePayload(field, body);
      } else {
        Wire.skip(in, wireType);
      }
    }
    if (payload == null) {
      // proto3 omits a default message entirely only if it was never set: DIAL_REQ with no
      // fields, say. Each type's payload with all-default fields.
      payload =
          switch (type) {
            case 0 -> new DialRequest("", "", 0);
            case 1 -> new DialResponse("", 0, 0);
            case 2 -> new CloseRequest(0);
            case 3 -> new CloseResponse("", 0);
            case 5 -> new CloseDial(0);
            case 6 -> new Drain();
            default ->
                throw new MalformedPacketException("packet of type " + type + " has no body");
          };
    }
    if (payload.type().ordinal() != type) {
      if (payload instanceof Data d) {
        d.release();
      }
      throw new MalformedPacketException(
          "packet type " + type + " does not match its " + payload.type() + " body");
    }
    return payload;
  }

  private static Packet decodePayload(int field, ByteBuf body) {
    long a = 0;
    long b = 0;
    String s1 = "";
    String s2 = "";
    ByteBuf data = null;
    try {
      while (body.isReadable()) {
        int tag = Wire.readVarint32(body);
        int f = tag >>> 3;
        int wt = tag & 7;
        switch (field * 16 + f) {
          // DialRequest: protocol 1, address 2, random 3
          case 2 * 16 + 1 -> s1 = Wire.readString(body, wt);
          case 2 * 16 + 2 -> s2 = Wire.readString(body, wt);
          case 2 * 16 + 3 -> a = Wire.readInt64(body, wt);
          // DialResponse: error 1, connectID 2, random 3
          case 3 * 16 + 1 -> s1 = Wire.readString(body, wt);
          case 3 * 16 + 2 -> a = Wire.readInt64(body, wt);
          case 3 * 16 + 3 -> b = Wire.readInt64(body, wt);
          // Data: connectID 1, error 2, data 3
          case 4 * 16 + 1 -> a = Wire.readInt64(body, wt);
          case 4 * 16 + 2 -> s1 = Wire.readString(body, wt);
          case 4 * 16 + 3 -> {
            Wire.expect(wt, Wire.LENGTH);
            ByteBuf slice = Wire.readLengthDelimited(body);
            if (data != null) {
              data.release();
            }
            data = slice.retain();
          }
          // CloseRequest: connectID 1; CloseResponse: error 1, connectID 2; CloseDial: random 1
          case 5 * 16 + 1, 7 * 16 + 1 -> a = Wire.readInt64(body, wt);
          case 6 * 16 + 1 -> s1 = Wire.readString(body, wt);
          case 6 * 16 + 2 -> a = Wire.readInt64(body, wt);
          default -> Wire.skip(body, wt);
        }
      }
    } catch (RuntimeException e) {
      if (data != null) {
        data.release();
      }
      throw e;
    }
    return switch (field) {
      case 2 -> new DialRequest(s1, s2, a);
      case 3 -> new DialResponse(s1, a, b);
      case 4 -> new Data(a, s1, data == null ? body.alloc().buffer(0) : data);
      case 5 -> new CloseRequest(a);
      case 6 -> new CloseResponse(s1, a);
      case 7 -> new CloseDial(a);
      default -> new Drain();
    };
  }

  // ---- encoding ------------------------------------------------------------------------------

  /**
   * Encodes {@code p} as one gRPC message: the 5-byte length prefix, then the protobuf bytes. A
   * DATA payload is not copied: the result is a composite that holds it (and releases it).
   */
  static ByteBuf encodeGrpcMessage(Packet p, ByteBufAllocator alloc) {
    ByteBuf head = alloc.buffer(64);
    head.writeByte(0); // not compressed
    int lengthAt = head.writerIndex();
    head.writeInt(0);
    int start = head.writerIndex();
    if (p.type() != Type.DIAL_REQ) { // proto3 omits the default enum value
      Wire.writeTag(head, 1, Wire.VARINT);
      Wire.writeVarint64(head, p.type().ordinal());
    }
    ByteBuf tail = null;
    if (p instanceof DialRequest r) {
      int len =
          Wire.stringSize(1, r.protocol())
              + Wire.stringSize(2, r.address())
              + Wire.int64Size(3, r.random());
      Wire.writeTag(head, 2, Wire.LENGTH);
      Wire.writeVarint64(head, len);
      Wire.writeString(head, 1, r.protocol());
      Wire.writeString(head, 2, r.address());
      Wire.writeInt64(head, 3, r.random());
    } else if (p instanceof DialResponse r) {
      int len =
          Wire.stringSize(1, r.error())
              + Wire.int64Size(2, r.connectId())
              + Wire.int64Size(3, r.random());
      Wire.writeTag(head, 3, Wire.LENGTH);
      Wire.writeVarint64(head, len);
      Wire.writeString(head, 1, r.error());
      Wire.writeInt64(head, 2, r.connectId());
      Wire.writeInt64(head, 3, r.random());
    } else if (p instanceof Data d) {
      int n = d.data().readableBytes();
      int len =
          Wire.int64Size(1, d.connectId())
              + Wire.stringSize(2, d.error())
              + (n == 0 ? 0 : 1 + Wire.varintSize(n) + n);
      Wire.writeTag(head, 4, Wire.LENGTH);
      Wire.writeVarint64(head, len);
      Wire.writeInt64(head, 1, d.connectId());
      Wire.writeString(head, 2, d.error());
      if (n > 0) {
        Wire.writeTag(head, 3, Wire.LENGTH);
        Wire.writeVarint64(head, n);
        tail = d.data();
      } else {
        d.release();
      }
    } else if (p instanceof CloseRequest r) {
      Wire.writeTag(head, 5, Wire.LENGTH);
      Wire.writeVarint64(head, Wire.int64Size(1, r.connectId()));
      Wire.writeInt64(head, 1, r.connectId());
    } else if (p instanceof CloseResponse r) {
      Wire.writeTag(head, 6, Wire.LENGTH);
      Wire.writeVarint64(head, Wire.stringSize(1, r.error()) + Wire.int64Size(2, r.connectId()));
      Wire.writeString(head, 1, r.error());
      Wire.writeInt64(head, 2, r.connectId());
    } else if (p instanceof CloseDial r) {
      Wire.writeTag(head, 7, Wire.LENGTH);
      Wire.writeVarint64(head, Wire.int64Size(1, r.random()));
      Wire.writeInt64(head, 1, r.random());
    } else if (p instanceof Drain) {
      Wire.writeTag(head, 8, Wire.LENGTH);
      Wire.writeVarint64(head, 0);
    }
    int length = head.writerIndex() - start + (tail == null ? 0 : tail.readableBytes());
    head.setInt(lengthAt, length);
    if (tail == null) {
      return head;
    }
    CompositeByteBuf out = alloc.compositeBuffer(2);
    return out.addComponents(true, head, tail);
  }

  /** The protobuf wire format's few primitives that Packet needs. */
  final class Wire {
    static final int VARINT = 0;
    static final int FIXED64 = 1;
    static final int LENGTH = 2;
    static final int FIXED32 = 5;

    private Wire() {}

    static int readVarint32(ByteBuf in) {
      long v = readVarint64(in);
      if (v != (int) v && (v >>> 32) != 0xFFFFFFFFL) {
        throw new MalformedPacketException("a 32-bit varint is out of range");
      }
      return (int) v;
    }

    static long readVarint64(ByteBuf in) {
      long v = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        if (!in.isReadable()) {
          throw new MalformedPacketException("truncated varint");
        }
        byte b = in.readByte();
        v |= (long) (b & 0x7f) << shift;
        if (b >= 0) {
          return v;
        }
      }
      throw new MalformedPacketException("varint longer than 10 bytes");
    }

    static ByteBuf readLengthDelimited(ByteBuf in) {
      long len = readVarint64(in);
      if (len < 0 || len > in.readableBytes()) {
        throw new MalformedPacketException(
            "a field of " + len + " bytes in " + in.readableBytes() + " left");
      }
      return in.readSlice((int) len);
    }

    static void expect(int wireType, int wanted) {
      if (wireType != wanted) {
        throw new MalformedPacketException("wire type " + wireType + " where " + wanted + " fits");
      }
    }

    static long readInt64(ByteBuf in, int wireType) {
      expect(wireType, VARINT);
      return readVarint64(in);
    }

    static String readString(ByteBuf in, int wireType) {
      expect(wireType, LENGTH);
      return readLengthDelimited(in).toString(StandardCharsets.UTF_8);
    }

    static void skip(ByteBuf in, int wireType) {
      int n =
          switch (wireType) {
            case VARINT -> {
              readVarint64(in);
              yield 0;
            }
            case FIXED64 -> 8;
            case LENGTH -> {
              readLengthDelimited(in);
              yield 0;
            }
            case FIXED32 -> 4;
            default -> throw new MalformedPacketException("unknown wire type " + wireType);
          };
      if (n > in.readableBytes()) {
        throw new MalformedPacketException("truncated field");
      }
      in.skipBytes(n);
    }

    static void writeTag(ByteBuf out, int field, int wireType) {
      writeVarint64(out, (field << 3) | wireType);
    }

    static void writeVarint64(ByteBuf out, long v) {
      while ((v & ~0x7FL) != 0) {
        out.writeByte((int) ((v & 0x7F) | 0x80));
        v >>>= 7;
      }
      out.writeByte((int) v);
    }

    static int varintSize(long v) {
      int n = 1;
      while ((v & ~0x7FL) != 0) {
        n++;
        v >>>= 7;
      }
      return n;
    }

    /** A proto3 int64 field: omitted when 0. */
    static int int64Size(int field, long v) {
      return v == 0 ? 0 : varintSize(field << 3) + varintSize(v);
    }

    static void writeInt64(ByteBuf out, int field, long v) {
      if (v != 0) {
        writeTag(out, field, VARINT);
        writeVarint64(out, v);
      }
    }

    /** A proto3 string field: omitted when empty. */
    static int stringSize(int field, String s) {
      int n = s.getBytes(StandardCharsets.UTF_8).length;
      return n == 0 ? 0 : varintSize(field << 3) + varintSize(n) + n;
    }

    static void writeString(ByteBuf out, int field, String s) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      if (b.length > 0) {
        writeTag(out, field, LENGTH);
        writeVarint64(out, b.length);
        out.writeBytes(b);
      }
    }
  }
}
