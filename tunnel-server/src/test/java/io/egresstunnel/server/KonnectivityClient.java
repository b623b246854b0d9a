package io.egresstunnel.server;

import com.google.protobuf.ByteString;
import com.google.protobuf.DescriptorProtos.DescriptorProto;
import com.google.protobuf.DescriptorProtos.EnumDescriptorProto;
import com.google.protobuf.DescriptorProtos.EnumValueDescriptorProto;
import com.google.protobuf.DescriptorProtos.FieldDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.OneofDescriptorProto;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * A test client that behaves as konnectivity-client does, with a real gRPC implementation
 * (grpc-java, its own shaded Netty) and protobuf built from a descriptor of client.proto at run
 * time, so nothing of the server's own wire code is shared: a new gRPC connection per tunnel (or
 * one shared connection, one call per dial), a call of {@code /ProxyService/Proxy}, {@code
 * DIAL_REQ} with a random id, {@code DIAL_RSP}, then {@code DATA}; {@code CLOSE_REQ} and a wait of
 * up to 10 s for {@code CLOSE_RSP}, then the call is cancelled; {@code DIAL_CLS} for a dial it
 * gives up.
 */
final class KonnectivityClient implements AutoCloseable {
  static final FileDescriptor PROTO = buildProto();
  static final Descriptor PACKET = PROTO.findMessageTypeByName("Packet");
  private static final MethodDescriptor<DynamicMessage, DynamicMessage> PROXY =
      MethodDescriptor.<DynamicMessage, DynamicMessage>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName("ProxyService/Proxy")
          .setRequestMarshaller(new Marshaller())
          .setResponseMarshaller(new Marshaller())
          .build();
  private static final EpollEventLoopGroup GROUP = new EpollEventLoopGroup(2);

  private final ManagedChannel channel;

  private KonnectivityClient(ManagedChannel channel) {
    this.channel = channel;
  }

  /** A gRPC connection over the Unix socket, as the apiserver makes. */
  static KonnectivityClient overUds(Path socket) {
    return new KonnectivityClient(
        NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toFile()))
            .eventLoopGroup(GROUP)
            .channelType(EpollDomainSocketChannel.class)
            .usePlaintext()
            .build());
  }

  /** A gRPC connection over TLS with a client certificate (ALPN h2, as gRPC clients require). */
  static KonnectivityClient overTls(
      InetSocketAddress address, java.io.File ca, java.io.File cert, java.io.File key)
      throws javax.net.ssl.SSLException {
    return new KonnectivityClient(
        NettyChannelBuilder.forAddress(address)
            .sslContext(
                io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts.forClient()
                    .trustManager(ca)
                    .keyManager(cert, key)
                    .build())
            .overrideAuthority("127.0.0.1")
            .build());
  }

  /** A gRPC connection over plain TCP. */
  static KonnectivityClient overTcp(InetSocketAddress address) {
    return new KonnectivityClient(NettyChannelBuilder.forAddress(address).usePlaintext().build());
  }

  /**
   * A call whose client takes the dial's answer and then reads nothing more, over a connection of
   * its own with a fixed 64 KiB HTTP/2 window: the apiserver's slow reader (a stuck {@code kubectl
   * logs -f}, say).
   */
  static SlowReader slowReader(Path socket, String address) throws Exception {
    ManagedChannel ch =
        NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toFile()))
            .eventLoopGroup(GROUP)
            .channelType(EpollDomainSocketChannel.class)
            .flowControlWindow(64 * 1024)
            .usePlaintext()
            .build();
    ClientCall<DynamicMessage, DynamicMessage> call = ch.newCall(PROXY, CallOptions.DEFAULT);
    CompletableFuture<DynamicMessage> answer = new CompletableFuture<>();
    call.start(
        new ClientCall.Listener<>() {
          @Override
          public void onMessage(DynamicMessage p) {
            if (p.hasField(fd("Packet", "dialResponse"))) {
              answer.complete((DynamicMessage) field(p, "dialResponse"));
            }
          }

          @Override
          public void onClose(io.grpc.Status status, io.grpc.Metadata trailers) {
            answer.completeExceptionally(status.asRuntimeException());
          }
        },
        new io.grpc.Metadata());
    call.request(1); // the DIAL_RSP, and nothing after it
    long random = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
    call.sendMessage(packet(0, "dialRequest", dialRequest("tcp", address, random)));
    long connectId = (Long) field(answer.get(30, TimeUnit.SECONDS), "connectID");
    return new SlowReader(ch, call, connectId);
  }

  /** See {@link #slowReader}. */
  record SlowReader(
      ManagedChannel channel, ClientCall<DynamicMessage, DynamicMessage> call, long connectId)
      implements AutoCloseable {
    @Override
    public void close() throws InterruptedException {
      call.cancel("done", null);
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** A dial's answer: the connection, or the DIAL_RSP error. */
  record Dialled(Conn conn, String error) {}

  /** Dials {@code address}; waits for DIAL_RSP up to 30 s, as konnectivity-client does. */
  Dialled dial(String address) throws Exception {
    long random = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
    Conn conn = new Conn(random);
    conn.requests =
        ClientCalls.asyncBidiStreamingCall(
            channel.newCall(PROXY, CallOptions.DEFAULT), conn.responses);
    conn.send(packet(0, "dialRequest", dialRequest("tcp", address, random)));
    DynamicMessage rsp = conn.dialResponse.get(30, TimeUnit.SECONDS);
    String error = (String) field(rsp, "error");
    if (!error.isEmpty()) {
      return new Dialled(null, error);
    }
    conn.connectId = (Long) field(rsp, "connectID");
    return new Dialled(conn, null);
  }

  /** Starts a dial and returns its connection before any answer (for DIAL_CLS). */
  Conn dialNoWait(String address) {
    long random = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
    Conn conn = new Conn(random);
    conn.requests =
        ClientCalls.asyncBidiStreamingCall(
            channel.newCall(PROXY, CallOptions.DEFAULT), conn.responses);
    conn.send(packet(0, "dialRequest", dialRequest("tcp", address, random)));
    return conn;
  }

  /**
   * A call whose requests are raw bytes (each one gRPC message), for packets konnectivity-client
   * would never send. Its status ends up in {@code end}.
   */
  RawCall raw() {
    RawCall call = new RawCall();
    call.requests =
        ClientCalls.asyncBidiStreamingCall(
            channel.newCall(RAW, CallOptions.DEFAULT), call.conn.responses);
    return call;
  }

  /** See {@link #raw()}. {@code conn} sees the answers. */
  static final class RawCall {
    final Conn conn = new Conn(0);
    StreamObserver<byte[]> requests;

    void send(byte[] message) {
      requests.onNext(message);
    }
  }

  private static final MethodDescriptor<byte[], DynamicMessage> RAW =
      MethodDescriptor.<byte[], DynamicMessage>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName("ProxyService/Proxy")
          .setRequestMarshaller(
              new MethodDescriptor.Marshaller<byte[]>() {
                @Override
                public InputStream stream(byte[] value) {
                  return new java.io.ByteArrayInputStream(value);
                }

                @Override
                public byte[] parse(InputStream stream) {
                  throw new UnsupportedOperationException();
                }
              })
          .setResponseMarshaller(new Marshaller())
          .build();

  @Override
  public void close() throws InterruptedException {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  /** One tunnelled connection: konnectivity-client's {@code conn}. */
  static final class Conn {
    final long random;
    long connectId;
    StreamObserver<DynamicMessage> requests;
    final CompletableFuture<DynamicMessage> dialResponse = new CompletableFuture<>();

    /** DATA payloads in order; an empty array marks the end (CLOSE_RSP or the call's end). */
    final BlockingQueue<byte[]> reads = new LinkedBlockingQueue<>();

    final CompletableFuture<String> closeResponse = new CompletableFuture<>();
    final CompletableFuture<Throwable> callEnd = new CompletableFuture<>();
    final StreamObserver<DynamicMessage> responses =
        new StreamObserver<>() {
          @Override
          public void onNext(DynamicMessage p) {
            int type =
                ((com.google.protobuf.Descriptors.EnumValueDescriptor) field(p, "type"))
                    .getNumber();
            switch (type) {
              case 1 -> dialResponse.complete((DynamicMessage) field(p, "dialResponse"));
              case 4 -> {
                DynamicMessage d = (DynamicMessage) field(p, "data");
                byte[] bytes = ((ByteString) field(d, "data")).toByteArray();
                if (bytes.length > 0) {
                  reads.add(bytes);
                }
              }
              case 3 -> {
                closeResponse.complete(
                    (String) field((DynamicMessage) field(p, "closeResponse"), "error"));
                reads.add(new byte[0]);
              }
              default -> {}
            }
          }

          @Override
          public void onError(Throwable t) {
            callEnd.complete(t);
            dialResponse.completeExceptionally(t);
            reads.add(new byte[0]);
          }

          @Override
          public void onCompleted() {
            callEnd.complete(null);
            dialResponse.completeExceptionally(new IOException("the call ended"));
            reads.add(new byte[0]);
          }
        };

    Conn(long random) {
      this.random = random;
    }

    synchronized void send(DynamicMessage p) {
      requests.onNext(p);
    }

    /** Writes {@code b} as one DATA packet. */
    void write(byte[] b, int off, int len) {
      send(
          packet(
              4,
              "data",
              DynamicMessage.newBuilder(PROTO.findMessageTypeByName("Data"))
                  .setField(fd("Data", "connectID"), connectId)
                  .setField(fd("Data", "data"), ByteString.copyFrom(b, off, len))
                  .build()));
    }

    /** The next payload, or null at the end. */
    byte[] read(long timeoutSeconds) throws InterruptedException {
      byte[] b = reads.poll(timeoutSeconds, TimeUnit.SECONDS);
      if (b == null) {
        throw new IllegalStateException("nothing read within " + timeoutSeconds + " s");
      }
      if (b.length == 0) {
        reads.add(b); // stays at the end
        return null;
      }
      return b;
    }

    /** CLOSE_REQ, then up to 10 s for CLOSE_RSP, then the call is cancelled. Returns its error. */
    String close() throws Exception {
      send(
          packet(
              2,
              "closeRequest",
              DynamicMessage.newBuilder(PROTO.findMessageTypeByName("CloseRequest"))
                  .setField(fd("CloseRequest", "connectID"), connectId)
                  .build()));
      try {
        return closeResponse.get(10, TimeUnit.SECONDS);
      } finally {
        requests.onError(io.grpc.Status.CANCELLED.asRuntimeException());
      }
    }

    /** DIAL_CLS for a dial given up, then the call is cancelled. */
    void cancelDial() {
      send(
          packet(
              5,
              "closeDial",
              DynamicMessage.newBuilder(PROTO.findMessageTypeByName("CloseDial"))
                  .setField(fd("CloseDial", "random"), random)
                  .build()));
      requests.onError(io.grpc.Status.CANCELLED.asRuntimeException());
    }
  }

  static DynamicMessage dialRequest(String protocol, String address, long random) {
    return DynamicMessage.newBuilder(PROTO.findMessageTypeByName("DialRequest"))
        .setField(fd("DialRequest", "protocol"), protocol)
        .setField(fd("DialRequest", "address"), address)
        .setField(fd("DialRequest", "random"), random)
        .build();
  }

  static DynamicMessage packet(int type, String payloadField, DynamicMessage payload) {
    return DynamicMessage.newBuilder(PACKET)
        .setField(
            fd("Packet", "type"), PROTO.findEnumTypeByName("PacketType").findValueByNumber(type))
        .setField(fd("Packet", payloadField), payload)
        .build();
  }

  static Object field(DynamicMessage m, String name) {
    return m.getField(m.getDescriptorForType().findFieldByName(name));
  }

  static com.google.protobuf.Descriptors.FieldDescriptor fd(String message, String field) {
    return PROTO.findMessageTypeByName(message).findFieldByName(field);
  }

  private static final class Marshaller implements MethodDescriptor.Marshaller<DynamicMessage> {
    @Override
    public InputStream stream(DynamicMessage value) {
      return value.toByteString().newInput();
    }

    @Override
    public DynamicMessage parse(InputStream stream) {
      try {
        return DynamicMessage.parseFrom(PACKET, stream);
      } catch (IOException e) {
        throw new IllegalArgumentException(e);
      }
    }
  }

  /** client.proto's messages, field numbers and enum values, as a descriptor. */
  private static FileDescriptor buildProto() {
    EnumDescriptorProto.Builder types = EnumDescriptorProto.newBuilder().setName("PacketType");
    String[] names = {
      "DIAL_REQ", "DIAL_RSP", "CLOSE_REQ", "CLOSE_RSP", "DATA", "DIAL_CLS", "DRAIN"
    };
    for (int i = 0; i < names.length; i++) {
      types.addValue(EnumValueDescriptorProto.newBuilder().setName(names[i]).setNumber(i));
    }
    DescriptorProto.Builder packet =
        DescriptorProto.newBuilder()
            .setName("Packet")
            .addField(field("type", 1, FieldDescriptorProto.Type.TYPE_ENUM, ".PacketType"))
            .addOneofDecl(OneofDescriptorProto.newBuilder().setName("payload"));
    String[][] payloads = {
      {"dialRequest", "DialRequest"},
      {"dialResponse", "DialResponse"},
      {"data", "Data"},
      {"closeRequest", "CloseRequest"},
      {"closeResponse", "CloseResponse"},
      {"closeDial", "CloseDial"},
      {"drain", "Drain"}
    };
    for (int i = 0; i < payloads.length; i++) {
      packet.addField(
          field(payloads[i][0], i + 2, FieldDescriptorProto.Type.TYPE_MESSAGE, "." + payloads[i][1])
              .toBuilder()
              .setOneofIndex(0));
    }
    FileDescriptorProto file =
        FileDescriptorProto.newBuilder()
            .setName("client.proto")
            .setSyntax("proto3")
            .addEnumType(types)
            .addMessageType(packet)
            .addMessageType(
                message(
                    "DialRequest",
                    field("protocol", 1, FieldDescriptorProto.Type.TYPE_STRING, null),
                    field("address", 2, FieldDescriptorProto.Type.TYPE_STRING, null),
                    field("random", 3, FieldDescriptorProto.Type.TYPE_INT64, null)))
            .addMessageType(
                message(
                    "DialResponse",
                    field("error", 1, FieldDescriptorProto.Type.TYPE_STRING, null),
                    field("connectID", 2, FieldDescriptorProto.Type.TYPE_INT64, null),
                    field("random", 3, FieldDescriptorProto.Type.TYPE_INT64, null)))
            .addMessageType(
                message(
                    "CloseRequest",
                    field("connectID", 1, FieldDescriptorProto.Type.TYPE_INT64, null)))
            .addMessageType(
                message(
                    "CloseResponse",
                    field("error", 1, FieldDescriptorProto.Type.TYPE_STRING, null),
                    field("connectID", 2, FieldDescriptorProto.Type.TYPE_INT64, null)))
            .addMessageType(
                message(
                    "CloseDial", field("random", 1, FieldDescriptorProto.Type.TYPE_INT64, null)))
            .addMessageType(message("Drain"))
            .addMessageType(
                message(
                    "Data",
                    field("connectID", 1, FieldDescriptorProto.Type.TYPE_INT64, null),
                    field("error", 2, FieldDescriptorProto.Type.TYPE_STRING, null),
                    field("data", 3, FieldDescriptorProto.Type.TYPE_BYTES, null)))
            .build();
    try {
      return FileDescriptor.buildFrom(file, new FileDescriptor[0]);
    } catch (com.google.protobuf.Descriptors.DescriptorValidationException e) {
      throw new IllegalStateException(e);
    }
  }

  private static DescriptorProto message(String name, FieldDescriptorProto... fields) {
    DescriptorProto.Builder b = DescriptorProto.newBuilder().setName(name);
    for (FieldDescriptorProto f : fields) {
      b.addField(f);
    }
    return b.build();
  }

  private static FieldDescriptorProto field(
      String name, int number, FieldDescriptorProto.Type type, String typeName) {
    FieldDescriptorProto.Builder b =
        FieldDescriptorProto.newBuilder()
            .setName(name)
            .setNumber(number)
            .setType(type)
            .setLabel(FieldDescriptorProto.Label.LABEL_OPTIONAL);
    if (typeName != null) {
      b.setTypeName(typeName);
    }
    return b.build();
  }
}
