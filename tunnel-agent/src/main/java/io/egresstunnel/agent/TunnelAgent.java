package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.DialPolicy;
import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.ReloadingSslContext;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.KubernetesClients;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * tunnel-agent: one {@link ServerConnection} per server URL, all sharing one event-loop group, one
 * dial policy for this node and one dialer.
 */
public final class TunnelAgent implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TunnelAgent.class);

  private final AgentConfig config;
  private final EventLoopGroup group;
  private final TargetDialer dialer = new TargetDialer(2);
  private final AtomicReference<DialPolicy> policy;
  private final KubernetesClient kubernetesClient;
  private final NodePolicySource policySource;
  private final List<ServerConnection> connections = new ArrayList<>();
  private ScheduledExecutorService tlsReloader;
  private ReloadingSslContext reloadingTls;

  public TunnelAgent(AgentConfig config) throws SSLException {
    this.config = config;
    this.policy =
        new AtomicReference<>(
            new DialPolicy(
                config.mode(),
                config.nodeName(),
                config.nodeAddresses(),
                config.podCidrs(),
                config.kubeletPort(),
                config.allow()));
    if (config.kubernetes() != null) {
      this.kubernetesClient = KubernetesClients.create(config.kubernetes().kubeconfig());
      this.policySource = new NodePolicySource(config, policy);
    } else {
      this.kubernetesClient = null;
      this.policySource = null;
    }
    this.group =
        Transport.newGroup(config.limits().threads(), new DefaultThreadFactory("agent-io", true));
    AgentHello hello =
        new AgentHello(
            Limits.MIN_VERSION,
            Limits.MAX_VERSION,
            0,
            config.limits().initialWindow(),
            config.limits().maxFramePayload(),
            config.kubeletPort(),
            config.nodeName(),
            config.nodeAddresses(),
            config.podCidrs());
    DialHandler dialHandler = new DialHandler(policy::get, dialer, config.limits().dialTimeout());
    Supplier<SslContext> tls = null;
    for (URI server : config.servers()) {
      if ("wss".equals(server.getScheme()) && tls == null) {
        tls = clientTls(config);
      }
      connections.add(
          new ServerConnection(
              server,
              config,
              group,
              "wss".equals(server.getScheme()) ? tls : null,
              hello,
              dialHandler));
    }
  }

  /**
   * The wss context. With a CA bundle or a client certificate from files, it follows the files:
   * each new connection uses what they hold now.
   */
  private Supplier<SslContext> clientTls(AgentConfig config) throws SSLException {
    List<Path> files = new ArrayList<>();
    if (config.caCert() != null) {
      files.add(config.caCert());
    }
    if (config.credentials().cert() != null) {
      files.add(config.credentials().cert());
      files.add(config.credentials().key());
    }
    if (files.isEmpty()) {
      SslContext fixed = buildClientTls(config);
      return () -> fixed;
    }
    tlsReloader =
        Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("tls-reload", true));
    reloadingTls =
        ReloadingSslContext.load(
                "agent TLS",
                files,
                () -> buildClientTls(config),
                TlsOptions.defaults().reloadInterval())
            .start(tlsReloader);
    return reloadingTls::current;
  }

  private static SslContext buildClientTls(AgentConfig config) throws SSLException {
    SslContextBuilder b = TlsOptions.defaults().apply(SslContextBuilder.forClient());
    if (config.caCert() != null) {
      b.trustManager(config.caCert().toFile());
    }
    AgentConfig.Credentials credentials = config.credentials();
    if (credentials.cert() != null) {
      b.keyManager(credentials.cert().toFile(), credentials.key().toFile());
    }
    return b.build();
  }

  public TunnelAgent start() {
    if (policySource != null) {
      policySource.start(kubernetesClient);
    }
    log.info("tunnel-agent for node {}: {}", config.nodeName(), policy.get().describe());
    connections.forEach(ServerConnection::start);
    return this;
  }

  /** The established sessions, one per connected server. */
  public List<TunnelSession> sessions() {
    return connections.stream().map(ServerConnection::session).filter(Objects::nonNull).toList();
  }

  public AgentConfig config() {
    return config;
  }

  /** The dial policy in force now. */
  public DialPolicy policy() {
    return policy.get();
  }

  @Override
  public void close() {
    connections.forEach(ServerConnection::stop);
    group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    dialer.close();
    if (reloadingTls != null) {
      reloadingTls.close();
      tlsReloader.shutdownNow();
    }
    if (policySource != null) {
      policySource.close();
    }
    if (kubernetesClient != null) {
      kubernetesClient.close();
    }
  }
}
