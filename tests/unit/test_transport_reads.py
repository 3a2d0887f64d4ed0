"""What the transport does with bytes that answer no request, against a real loopback server."""

import asyncio

from client_sut.measure.transport import ConnectionPool


def test_a_response_to_no_request_drops_the_connection():
    async def scenario() -> tuple[bool, bytes]:
        client_gone = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # nobody asked
            await writer.drain()
            client_gone.set_result(await reader.read())  # b"" once the client has closed
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = ConnectionPool(f"http://127.0.0.1:{port}", ssl_verify=True, keepalive_s=5.0,
                              connect_timeout_s=5.0, headers={})
        try:
            connection = await pool.connect()
            sent = await asyncio.wait_for(client_gone, 10)
            return connection.closed and pool.take_idle() is None, sent
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    dropped, sent = asyncio.run(scenario())
    assert dropped and sent == b""  # closed without writing anything
