package io.egresstunnel.server;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;

/** Sends random bytes through a socket while reading its echo, hashing both sides. */
final class Transfers {
  private Transfers() {}

  /** SHA-256 of what was sent and of what came back, and how many bytes came back. */
  record Result(String sentSha, String receivedSha, long received) {}

  /**
   * Writes {@code bytes} random bytes (seeded) and shuts the output, while reading until EOF. Both
   * run concurrently, so a full pipe never deadlocks.
   */
  static Result echo(Socket s, long bytes, long seed) throws Exception {
    CompletableFuture<String> sent =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                String sha = writeRandom(s.getOutputStream(), bytes, seed);
                s.shutdownOutput();
                return sha;
              } catch (IOException e) {
                throw new IllegalStateException(e);
              }
            });
    MessageDigest md = sha256();
    long n = readAll(s.getInputStream(), md);
    return new Result(sent.get(), hex(md), n);
  }

  static String writeRandom(OutputStream out, long bytes, long seed) throws IOException {
    MessageDigest md = sha256();
    SplittableRandom random = new SplittableRandom(seed);
    byte[] buf = new byte[64 * 1024];
    long left = bytes;
    while (left > 0) {
      int n = (int) Math.min(buf.length, left);
      for (int i = 0; i < n; i += 8) {
        long v = random.nextLong();
        for (int j = 0; j < 8 && i + j < n; j++) {
          buf[i + j] = (byte) (v >>> (8 * j));
        }
      }
      md.update(buf, 0, n);
      out.write(buf, 0, n);
      left -= n;
    }
    out.flush();
    return hex(md);
  }

  static long readAll(InputStream in, MessageDigest md) throws IOException {
    byte[] buf = new byte[64 * 1024];
    long total = 0;
    for (int n; (n = in.read(buf)) > 0; ) {
      md.update(buf, 0, n);
      total += n;
    }
    return total;
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  static String hex(MessageDigest md) {
    return HexFormat.of().formatHex(md.digest());
  }
}
