package io.egresstunnel.bench.tunnel;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * A Konnectivity GRPC client for the benchmarks, with grpc-java (its own shaded Netty) and packets
 * written and read with protobuf-java's stream API, so that the client's own cost stays small and
 * nothing of the server's wire code is used. A tunnelled connection looks like a socket: {@link
 * Conn#out()} sends DATA packets (waiting while the call is not ready: HTTP/2 flow control), and
 * {@link Conn#in()} reads the payloads that came back.
 */
final class GrpcClient implements AutoCloseable {
  private static final MethodDescriptor<byte[], byte[]> PROXY =
      MethodDescriptor.<byte[], byte[]>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName("ProxyService/Proxy")
          .setRequestMarshaller(new Bytes())
          .setResponseMarshaller(new Bytes())
          .build();

  private final ManagedChannel channel;

  GrpcClient(InetSocketAddress server) {
    channel = NettyChannelBuilder.forAddress(server).usePlaintext().build();
  }

  /** Dials {@code target} through one call of the shared connection. */
  Conn dial(InetSocketAddress target) throws Exception {
    Conn c = new Conn(channel.newCall(PROXY, CallOptions.DEFAULT));
    String address = target.getAddress().getHostAddress() + ":" + target.getPort();
    long random = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
    c.send(dialRequest(address, random));
    c.connectId = c.dialed.get(10, TimeUnit.SECONDS);
    return c;
  }

  @Override
  public void close() throws InterruptedException {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  /** One tunnelled connection. */
  static final class Conn implements AutoCloseable {
    private final ClientCall<byte[], byte[]> call;
    private final Semaphore ready = new Semaphore(0);
    final CompletableFuture<Long> dialed = new CompletableFuture<>();
    private final BlockingQueue<byte[]> payloads = new LinkedBlockingQueue<>();
    long connectId;

    Conn(ClientCall<byte[], byte[]> call) {
      this.call = call;
      call.start(
          new ClientCall.Listener<>() {
            @Override
            public void onMessage(byte[] packet) {
              onPacket(packet);
              call.request(1);
            }

            @Override
            public void onReady() {
              ready.release();
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
              dialed.completeExceptionally(status.asRuntimeException());
              payloads.add(new byte[0]);
              ready.release(1 << 20);
            }
          },
          new Metadata());
      call.request(1);
    }

    private void onPacket(byte[] packet) {
      try {
        CodedInputStream in = CodedInputStream.newInstance(packet);
        for (int tag; (tag = in.readTag()) != 0; ) {
          int field = tag >>> 3;
          if (field == 3) { // DialResponse
            CodedInputStream r = CodedInputStream.newInstance(in.readByteArray());
            String error = "";
            long id = 0;
            for (int t; (t = r.readTag()) != 0; ) {
              switch (t >>> 3) {
                case 1 -> error = r.readString();
                case 2 -> id = r.readInt64();
                default -> r.skipField(t);
              }
            }
            if (error.isEmpty()) {
              dialed.complete(id);
            } else {
              dialed.completeExceptionally(new IOException(error));
            }
          } else if (field == 4) { // Data
            CodedInputStream d = CodedInputStream.newInstance(in.readByteArray());
            for (int t; (t = d.readTag()) != 0; ) {
              if ((t >>> 3) == 3) {
                payloads.add(d.readByteArray());
              } else {
                d.skipField(t);
              }
            }
          } else if (field == 6) { // CloseResponse: the end
            in.readByteArray();
            payloads.add(new byte[0]);
          } else {
            in.skipField(tag);
          }
        }
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }

    void send(byte[] packet) throws InterruptedException {
      while (!call.isReady()) {
        ready.tryAcquire(10, TimeUnit.MILLISECONDS);
      }
      call.sendMessage(packet);
    }

    OutputStream out() {
      return new OutputStream() {
        @Override
        public void write(int b) throws IOException {
          write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
          try {
            send(data(connectId, b, off, len));
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
          }
        }
      };
    }

    InputStream in() {
      return new InputStream() {
        private byte[] current = new byte[0];
        private int pos;

        @Override
        public int read() throws IOException {
          byte[] one = new byte[1];
          return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
          if (pos == current.length) {
            try {
              current = payloads.take();
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new IOException(e);
            }
            pos = 0;
            if (current.length == 0) {
              payloads.add(current);
              return -1;
            }
          }
          int n = Math.min(len, current.length - pos);
          System.arraycopy(current, pos, b, off, n);
          pos += n;
          return n;
        }
      };
    }

    @Override
    public void close() {
      call.cancel("done", null);
    }
  }

  private static byte[] dialRequest(String address, long random) throws IOException {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    CodedOutputStream b = CodedOutputStream.newInstance(body);
    b.writeString(1, "tcp");
    b.writeString(2, address);
    b.writeInt64(3, random);
    b.flush();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    CodedOutputStream p = CodedOutputStream.newInstance(out);
    p.writeByteArray(2, body.toByteArray()); // type DIAL_REQ is 0: left out
    p.flush();
    return out.toByteArray();
  }

  private static byte[] data(long connectId, byte[] b, int off, int len) throws IOException {
    int bodySize =
        CodedOutputStream.computeInt64Size(1, connectId)
            + CodedOutputStream.computeTagSize(3)
            + CodedOutputStream.computeUInt32SizeNoTag(len)
            + len;
    byte[] out =
        new byte
            [CodedOutputStream.computeEnumSize(1, 4)
                + CodedOutputStream.computeTagSize(4)
                + CodedOutputStream.computeUInt32SizeNoTag(bodySize)
                + bodySize];
    CodedOutputStream p = CodedOutputStream.newInstance(out);
    p.writeEnum(1, 4);
    p.writeTag(4, com.google.protobuf.WireFormat.WIRETYPE_LENGTH_DELIMITED);
    p.writeUInt32NoTag(bodySize);
    p.writeInt64(1, connectId);
    p.writeTag(3, com.google.protobuf.WireFormat.WIRETYPE_LENGTH_DELIMITED);
    p.writeUInt32NoTag(len);
    p.writeRawBytes(b, off, len);
    p.flush();
    return out;
  }

  private static final class Bytes implements MethodDescriptor.Marshaller<byte[]> {
    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }
}
