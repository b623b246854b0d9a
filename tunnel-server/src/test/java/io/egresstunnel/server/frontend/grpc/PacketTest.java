package io.egresstunnel.server.frontend.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Packet's own protobuf wire code against protobuf-java, which reads and writes the same messages
 * from a descriptor of konnectivity-client's client.proto: both directions, every type, default
 * values (proto3 leaves them out), unknown fields, and malformed input.
 */
class PacketTest {
  private static final FileDescriptor PROTO = proto();
  private static final Descriptor PACKET = PROTO.findMessageTypeByName("Packet");

  /** The test tree's KonnectivityClient builds the descriptor; reuse it rather than copy it. */
  private static FileDescriptor proto() {
    try {
      Class<?> c = Class.forName("io.egresstunnel.server.KonnectivityClient");
      var f = c.getDeclaredField("PROTO");
      f.setAccessible(true);
      return (FileDescriptor) f.get(null);
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException(e);
    }
  }

  private static List<Packet> samples() {
    return List.of(
        new Packet.DialRequest("tcp", "10.0.0.1:10250", 1234567890123L),
        new Packet.DialRequest("", "", 0),
        new Packet.DialResponse("", 7, -5),
        new Packet.DialResponse("connection refused: 10.0.0.1:9", 0, Long.MAX_VALUE),
        new Packet.CloseRequest(42),
        new Packet.CloseResponse("cut short", 42),
        new Packet.CloseResponse("", 0),
        new Packet.CloseDial(Long.MIN_VALUE),
        new Packet.Drain());
  }

  @Test
  void whatWeWriteProtobufReadsAndBack() throws Exception {
    for (Packet p : samples()) {
      byte[] ours = protobufBytes(p);
      DynamicMessage theirs = DynamicMessage.parseFrom(PACKET, ours);
      ByteBuf reencoded = Unpooled.wrappedBuffer(theirs.toByteArray());
      try {
        assertThat(Packet.decode(reencoded)).as("%s", p).isEqualTo(p);
      } finally {
        reencoded.release();
      }
    }
  }

  @Test
  void dataPayloadsRoundTripWithoutACopy() throws Exception {
    byte[] payload = new byte[100_000];
    new Random(3).nextBytes(payload);
    ByteBuf data = Unpooled.wrappedBuffer(payload);
    byte[] ours = protobufBytes(new Packet.Data(99, "", data));
    DynamicMessage theirs = DynamicMessage.parseFrom(PACKET, ours);
    DynamicMessage d = (DynamicMessage) theirs.getField(PACKET.findFieldByName("data"));
    assertThat(
            ((ByteString) d.getField(d.getDescriptorForType().findFieldByName("data")))
                .toByteArray())
        .isEqualTo(payload);
    ByteBuf in = Unpooled.wrappedBuffer(theirs.toByteArray());
    Packet.Data back = (Packet.Data) Packet.decode(in);
    try {
      assertThat(back.connectId()).isEqualTo(99);
      assertThat(back.data().array()).as("a slice of the received bytes").isSameAs(in.array());
      byte[] got = new byte[back.data().readableBytes()];
      back.data().getBytes(back.data().readerIndex(), got);
      assertThat(got).isEqualTo(payload);
    } finally {
      back.release();
      in.release();
    }
  }

  @Test
  void unknownFieldsAreSkipped() {
    // DIAL_RSP with field 9 (varint), field 10 (length), field 11 (fixed64), field 12 (fixed32)
    ByteBuf in =
        Unpooled.wrappedBuffer(
            new byte[] {
              0x08, 0x01, 0x48, 0x05, 0x52, 0x02, 'h', 'i', 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1,
              2, 3, 4, 0x1a, 0x02, 0x10, 0x07
            });
    try {
      assertThat(Packet.decode(in)).isEqualTo(new Packet.DialResponse("", 7, 0));
    } finally {
      in.release();
    }
  }

  @Test
  void malformedPacketsAreRefusedWithAReason() {
    byte[][] bad = {
      {0x08}, // truncated varint
      {0x08, 0x04}, // DATA with no body
      {0x12, 0x10, 0x0a}, // a field longer than what is left
      {0x08, 0x01, 0x12, 0x00}, // type DIAL_RSP with a DialRequest body
      {0x0b}, // wire type 3 (groups) is not supported
      {
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        (byte) 0x80,
        0x01
      }, // an 11-byte varint
    };
    for (byte[] b : bad) {
      ByteBuf in = Unpooled.wrappedBuffer(b);
      try {
        assertThatThrownBy(() -> Packet.decode(in))
            .isInstanceOf(Packet.MalformedPacketException.class);
      } finally {
        in.release();
      }
    }
  }

  @Test
  void randomBytesNeverLeakOrEscapeAsAnotherException() {
    Random r = new Random(11);
    for (int i = 0; i < 20_000; i++) {
      byte[] b = new byte[r.nextInt(40)];
      r.nextBytes(b);
      ByteBuf in = Unpooled.wrappedBuffer(b);
      try {
        Packet p = Packet.decode(in);
        if (p instanceof Packet.Data d) {
          d.release();
        }
      } catch (Packet.MalformedPacketException expected) {
        // a clear refusal
      } finally {
        in.release();
      }
    }
  }

  /** Our encoding of {@code p}, without the gRPC prefix. */
  private static byte[] protobufBytes(Packet p) throws Exception {
    ByteBuf framed = Packet.encodeGrpcMessage(p, ByteBufAllocator.DEFAULT);
    try {
      assertThat(framed.getByte(framed.readerIndex())).isZero();
      int length = framed.getInt(framed.readerIndex() + 1);
      assertThat(length).isEqualTo(framed.readableBytes() - 5);
      byte[] out = new byte[length];
      framed.getBytes(framed.readerIndex() + 5, out);
      return out;
    } finally {
      framed.release();
    }
  }
}
