package io.egresstunnel.routing;

import io.egresstunnel.proto.config.CommandErrors;
import io.fabric8.kubernetes.client.Config;
import io.fabric8.kubernetes.client.ConfigBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Builds the fabric8 client that server and agent share the way of configuring. */
public final class KubernetesClients {
  private KubernetesClients() {}

  /**
   * A client from {@code kubeconfig}, or from the in-cluster configuration (the pod's service
   * account) when it is null. Uses the JDK's HTTP client.
   */
  public static KubernetesClient create(Path kubeconfig) {
    Config config;
    if (kubeconfig == null) {
      config = new ConfigBuilder().build();
    } else {
      String text;
      try {
        text = Files.readString(kubeconfig);
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "--kubeconfig " + kubeconfig + ": " + CommandErrors.describe(e), e);
      }
      try {
        config = Config.fromKubeconfig(text);
      } catch (RuntimeException e) {
        throw new IllegalArgumentException(
            "--kubeconfig "
                + kubeconfig
                + ": not a usable kubeconfig: "
                + CommandErrors.describe(e),
            e);
      }
    }
    return new KubernetesClientBuilder().withConfig(config).build();
  }
}
