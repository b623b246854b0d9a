package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.server.frontend.ConnectTarget;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class ConnectTargetTest {

  @ParameterizedTest
  @CsvSource({
    "10.0.0.1:10250, 10.0.0.1, 10250",
    "[fd00::1]:443, fd00::1, 443",
    "[::1]:1, ::1, 1",
    "worker-1.example:65535, worker-1.example, 65535"
  })
  void parsesAuthorityForm(String authority, String host, int port) {
    ConnectTarget t = ConnectTarget.parse(authority);
    assertThat(t.host()).isEqualTo(host);
    assertThat(t.port()).isEqualTo(port);
    assertThat(t.toString()).isEqualTo(authority);
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "",
        ":",
        "host",
        "host:",
        ":80",
        "host:0",
        "host:65536",
        "host:-1",
        "host:8o",
        "::1:80",
        "[::1:80",
        "[nothex]:80",
        "a b:80",
        "/path"
      })
  void rejectsEverythingElseWithAClearMessage(String authority) {
    assertThatThrownBy(() -> ConnectTarget.parse(authority))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("CONNECT target");
  }
}
