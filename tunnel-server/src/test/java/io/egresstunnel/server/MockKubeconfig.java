package io.egresstunnel.server;

import io.fabric8.kubernetes.client.KubernetesClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** A kubeconfig file pointing at fabric8's mock API server, as the real commands read one. */
final class MockKubeconfig {
  private MockKubeconfig() {}

  static Path write(Path dir, KubernetesClient mockClient) throws IOException {
    return Files.writeString(
        dir.resolve("kubeconfig"),
        String.join(
            "\n",
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "- name: mock",
            "  cluster:",
            "    server: " + mockClient.getConfiguration().getMasterUrl(),
            "users:",
            "- name: tunnel-server",
            "  user:",
            "    token: test",
            "contexts:",
            "- name: mock",
            "  context:",
            "    cluster: mock",
            "    user: tunnel-server",
            "current-context: mock",
            ""));
  }
}
