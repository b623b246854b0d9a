package io.egresstunnel.server;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** A raw-socket CONNECT client that sends exactly what the kube-apiserver sends. */
final class ConnectClient {
  private ConnectClient() {}

  /** An answered CONNECT: the status, the raw head, and the socket (open only after a 200). */
  record Answer(int status, String head, String body, Socket socket) {}

  /** The apiserver's request: target in the request line, Host 127.0.0.1, nothing else. */
  static byte[] apiserverRequest(String target) {
    return ("CONNECT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .getBytes(StandardCharsets.US_ASCII);
  }

  static Answer connect(InetSocketAddress proxy, String target) throws IOException {
    return send(proxy, apiserverRequest(target));
  }

  /** Sends raw request bytes, reads the response head byte by byte (so nothing after it). */
  static Answer send(InetSocketAddress proxy, byte[] request) throws IOException {
    Socket s = new Socket();
    s.connect(proxy, 5_000);
    s.setSoTimeout(30_000);
    s.getOutputStream().write(request);
    s.getOutputStream().flush();
    InputStream in = s.getInputStream();
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    int matched = 0;
    byte[] end = {'\r', '\n', '\r', '\n'};
    while (matched < 4) {
      int b = in.read();
      if (b < 0) {
        break;
      }
      head.write(b);
      matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
    }
    String headText = head.toString(StandardCharsets.US_ASCII);
    int status = headText.length() >= 12 ? Integer.parseInt(headText.substring(9, 12)) : -1;
    if (status == 200) {
      return new Answer(status, headText, "", s);
    }
    String body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    s.close();
    return new Answer(status, headText, body, null);
  }
}
